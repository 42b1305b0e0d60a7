"""Benchmark: makespan on published multi-skill scheduling instances (MSPSP-InstLib, iMOPSE).

    python benchmarks/mspsp.py --quick --json var/bench/mspsp.json
    python benchmarks/mspsp.py --instance path/to/x.dzn --best-known best.csv --time-limit 60

Prints one row per instance (makespan, bound, best-known, gap to best-known, seconds) and
writes {"instances": [{name, makespan, bound, best_known, gap_pct, seconds, plan_checked}]}.
Every plan goes through check_plan.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/ledger.py
# would shadow the ledger package: drop it, and put the project root first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from scheduling import BestKnown, check_plan, load_best_known, load_instance, solve  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "benchmark-data"
QUICK = [
    "mspsp-instlib/inst_set2c_sf0_nc2.1_n20_l3_m4_00.dzn",
    "mspsp-instlib/inst_set1a_sf0.5_nc1.5_n20_m10_00.dzn",
    "mspsp-instlib/inst_set1a_sf0.75_nc1.8_n20_m10_00.dzn",
    "imopse/10_3_5_3.def",
    "imopse/15_6_10_6.def",
]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", action="append", type=Path, help=".dzn or .def (repeat)")
    parser.add_argument("--best-known", action="append", type=Path, help="CSV (repeat)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data dir")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5 small instances, 10 s each")
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args(argv)

    if args.instance:
        paths = args.instance
    elif args.quick:
        paths = [args.data / p for p in QUICK]
    else:
        paths = sorted(args.data.glob("*/*.dzn")) + sorted(args.data.glob("*/*.def"))
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"instance files not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    time_limit = min(args.time_limit, 10.0) if args.quick else args.time_limit
    best: dict[str, BestKnown] = {}
    csvs = args.best_known or [args.data / "mspsp-instlib" / "best-known.csv"]
    for csv_path in csvs:
        if csv_path.exists():
            best.update(load_best_known(csv_path))

    rows = []
    header = (
        f"{'instance':42} {'reqs':>4} {'makespan':>8} {'bound':>6} {'best':>6} {'gap%':>6}"
        f" {'s':>6} ok"
    )
    print(header)
    print("-" * len(header))
    for path in paths:
        instance = load_instance(path)
        started = time.monotonic()
        plan = solve(
            instance,
            mode="makespan",
            time_limit_s=time_limit,
            num_workers=args.workers,
            seed=args.seed,
        )
        seconds = time.monotonic() - started
        checked = not check_plan(instance, plan)
        known = best.get(instance.name)
        makespan = plan.objective.makespan
        gap = None
        if known is not None and makespan is not None:
            gap = round(100.0 * (makespan - known.makespan) / known.makespan, 2)
        row = {
            "name": instance.name,
            "makespan": makespan,
            "bound": plan.bound,
            "best_known": known.makespan if known else None,
            "best_known_proven": known.proven_optimal if known else None,
            "gap_pct": gap,
            "seconds": round(seconds, 2),
            "plan_checked": checked,
            "status": plan.status,
            "requests": len(instance.requests),
        }
        rows.append(row)
        print(
            f"{instance.name[:42]:42} {len(instance.requests):>4} {makespan!s:>8} "
            f"{plan.bound!s:>6} {row['best_known']!s:>6} {gap if gap is not None else '-':>6} "
            f"{seconds:>6.1f} {'yes' if checked else 'NO'}"
        )
    gaps = [r["gap_pct"] for r in rows if r["gap_pct"] is not None]
    if gaps:
        print(f"mean gap to best-known: {sum(gaps) / len(gaps):.2f}% over {len(gaps)} instances")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "time_limit_s": time_limit,
            "workers": args.workers,
            "seed": args.seed,
            "instances": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if all(r["plan_checked"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
