"""Loaders for published multi-skill scheduling instances, as makespan-mode `Instance`s.

- MSPSP-InstLib `.dzn` (Young, Feydy, Schutt, CP 2017): `dur`, `sreq` (workers needed per
  skill), `mastery` (worker x skill), `pred`/`succ` (1-based). A worker contributes one skill
  to an activity, which is exactly one role per resource in our model.
- iMOPSE `.def` (Myszkowski et al. 2015): resources with `Qk: level` skills and a salary;
  tasks needing one worker with skill k at level >= the given one, and predecessor ids.

Activities of duration 0 (the dummy start and end) are dropped; precedences through them
are kept by joining their predecessors to their successors. Every request is mandatory and
the horizon is the sum of durations, which always holds a serial schedule.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from scheduling.errors import InstanceFormatError
from scheduling.schemas import Instance, Request, Requirement, Resource

POOL_UNIT = "pool"
PROJECT = "benchmark"


def load_instance(path: str | Path) -> Instance:
    """Load a `.dzn` (MSPSP-InstLib) or `.def` (iMOPSE) file by its extension."""
    path = Path(path)
    if path.suffix == ".dzn":
        return load_dzn(path)
    if path.suffix == ".def":
        return load_def(path)
    raise InstanceFormatError(f"{path}: unknown extension (expected .dzn or .def)")


def load_dzn(path: str | Path) -> Instance:
    """Load an MSPSP-InstLib `.dzn` instance."""
    path = Path(path)
    text = re.sub(r"%[^\n]*", "", path.read_text())
    values = dict(re.findall(r"(\w+)\s*=\s*([^;]*);", text))

    def ints(name: str) -> list[int]:
        if name not in values:
            raise InstanceFormatError(f"{path}: missing {name}")
        return [int(x) for x in re.findall(r"-?\d+", values[name])]

    def bools(name: str) -> list[bool]:
        if name not in values:
            raise InstanceFormatError(f"{path}: missing {name}")
        return [x == "true" for x in re.findall(r"true|false", values[name])]

    n_acts = ints("nActs")[0]
    n_skills = ints("nSkills")[0]
    n_res = ints("nResources")[0]
    dur = ints("dur")
    sreq = ints("sreq")
    mastery = bools("mastery")
    pred, succ = ints("pred"), ints("succ")
    if len(dur) != n_acts or len(sreq) != n_acts * n_skills or len(mastery) != n_res * n_skills:
        raise InstanceFormatError(f"{path}: array sizes do not match nActs/nSkills/nResources")
    if len(pred) != len(succ):
        raise InstanceFormatError(f"{path}: pred and succ differ in length")
    resources = [
        Resource(
            id=f"w{w + 1}",
            home_unit=POOL_UNIT,
            skills={f"s{s + 1}": 1 for s in range(n_skills) if mastery[w * n_skills + s]},
        )
        for w in range(n_res)
    ]
    needs = [
        [
            Requirement(skill=f"s{s + 1}", min_level=1, quantity=sreq[a * n_skills + s])
            for s in range(n_skills)
            if sreq[a * n_skills + s] > 0
        ]
        for a in range(n_acts)
    ]
    edges = [(p - 1, s - 1) for p, s in zip(pred, succ, strict=True)]
    return _instance(path.stem, resources, dur, needs, edges)


def load_def(path: str | Path) -> Instance:
    """Load an iMOPSE `.def` instance (salaries become cost rates in hundredths)."""
    path = Path(path)
    resources: list[Resource] = []
    tasks: list[tuple[int, int, list[Requirement], list[int]]] = []
    section = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("ResourceID"):
            section = "resources"
            continue
        if stripped.startswith("TaskID"):
            section = "tasks"
            continue
        if not stripped or stripped.startswith("="):
            if stripped.startswith("="):
                section = ""
            continue
        skills = [(int(k), int(v)) for k, v in re.findall(r"Q(\d+):\s*(-?\d+)", stripped)]
        rest = re.sub(r"Q\d+:\s*-?\d+", " ", stripped).split()
        try:
            if section == "resources":
                resources.append(
                    Resource(
                        id=f"r{int(rest[0])}",
                        home_unit=POOL_UNIT,
                        skills={f"q{k}": v for k, v in skills},
                        cost_rate=round(float(rest[1]) * 100),
                    )
                )
            elif section == "tasks":
                reqs = [Requirement(skill=f"q{k}", min_level=v) for k, v in skills]
                tasks.append((int(rest[0]), int(rest[1]), reqs, [int(x) for x in rest[2:]]))
        except (IndexError, ValueError) as exc:
            raise InstanceFormatError(f"{path}: cannot parse {stripped!r}") from exc
    if not resources or not tasks:
        raise InstanceFormatError(f"{path}: no resources or no tasks found")
    position = {task_id: i for i, (task_id, *_rest) in enumerate(tasks)}
    edges = []
    for i, (_task_id, _d, _r, preds) in enumerate(tasks):
        for p in preds:
            if p not in position:
                raise InstanceFormatError(f"{path}: unknown predecessor {p}")
            edges.append((position[p], i))
    return _instance(
        path.stem,
        resources,
        [d for _t, d, _r, _p in tasks],
        [r for _t, _d, r, _p in tasks],
        edges,
        ids=[f"t{t}" for t, *_rest in tasks],
    )


def _instance(
    name: str,
    resources: list[Resource],
    durations: list[int],
    needs: list[list[Requirement]],
    edges: list[tuple[int, int]],
    ids: list[str] | None = None,
) -> Instance:
    """A makespan-mode instance; zero-duration activities are contracted out of the graph."""
    n = len(durations)
    ids = ids or [f"a{a + 1}" for a in range(n)]
    preds: list[set[int]] = [set() for _ in range(n)]
    for p, s in edges:
        if not (0 <= p < n and 0 <= s < n):
            raise InstanceFormatError(f"{name}: precedence ({p + 1}, {s + 1}) out of range")
        preds[s].add(p)

    def real_preds(a: int, seen: set[int]) -> set[int]:
        out: set[int] = set()
        for p in preds[a]:
            if p in seen:
                continue
            seen.add(p)
            out |= {p} if durations[p] > 0 else real_preds(p, seen)
        return out

    horizon = max(sum(durations), 1)
    requests = [
        Request(
            id=ids[a],
            project=PROJECT,
            unit=POOL_UNIT,
            requirements=needs[a],
            duration=durations[a],
            window_start=0,
            window_end=horizon,
            after=[ids[p] for p in sorted(real_preds(a, set()))],
            arrival=a,
            mandatory=True,
        )
        for a in range(n)
        if durations[a] > 0
    ]
    return Instance(name=name, horizon=horizon, resources=resources, requests=requests)


@dataclass(frozen=True)
class BestKnown:
    """One row of a best-known results table."""

    makespan: int
    proven_optimal: bool
    lower_bound: int | None = None


def load_best_known(path: str | Path) -> dict[str, BestKnown]:
    """Instance stem -> best-known makespan, from a CSV like the shared `best-known.csv`."""
    out = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            name = Path(row["instance"]).stem
            out[name] = BestKnown(
                makespan=int(row["best_makespan"]),
                proven_optimal=row.get("proven_optimal", "0").strip() == "1",
                lower_bound=int(row["naive_lb"]) if row.get("naive_lb") else None,
            )
    return out
