"""Loaders for MSPSP-InstLib .dzn and iMOPSE .def files, and the makespan mode on them."""

from pathlib import Path

import pytest

from scheduling import (
    InstanceFormatError,
    NoFeasiblePlan,
    check_plan,
    load_best_known,
    load_instance,
    solve,
)

DZN = """% a tiny MSPSP instance
mint = 5;
nActs = 5;
dur = [0,3,2,2,0];
nSkills = 2;
sreq = [| 0,0, | 1,0, | 0,1, | 1,1, | 0,0 |];
nResources = 2;
mastery = [| true,false, | true,true |];
nPrecs = 5;
pred = [1,1,2,3,4];
succ = [2,3,4,4,5];
USEFUL_RES = [{},{1,2},{2},{1,2},{}];
"""

DEF = """==========================================================
Tasks: 3
Resources: 2
==========================================================
ResourceID \t Salary \t Skills
1\t \t \t10.5\t \t Q0: 1 \t  Q1: 0 \t
2\t \t \t20.0\t \t Q1: 2 \t
==========================================================
TaskID \t Duration \t Skill \t Predecessor IDs
1\t \t \t4\t Q0: 1\t \t
2\t \t \t3\t Q1: 2\t \t
3\t \t \t5\t Q1: 0\t \t1\t2\t
==========================================================
"""

SHARED = Path(__file__).resolve().parents[3] / "shared" / "benchmark-data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dzn_loader_drops_dummies_and_keeps_precedence_through_them(tmp_path: Path) -> None:
    inst = load_instance(write(tmp_path, "tiny.dzn", DZN))
    assert [r.id for r in inst.requests] == ["a2", "a3", "a4"]
    assert inst.requests[2].after == ["a2", "a3"]
    assert inst.requests[2].requirements[1].skill == "s2"
    assert inst.resources[1].skills == {"s1": 1, "s2": 1}


def test_dzn_makespan_is_optimal_and_checked(tmp_path: Path) -> None:
    inst = load_instance(write(tmp_path, "tiny.dzn", DZN))
    plan = solve(inst, mode="makespan", time_limit_s=5, num_workers=1)
    # a2 (3, w1) and a3 (2, w2) in parallel, then a4 needs both workers: 3 + 2 = 5.
    assert plan.objective.makespan == 5 and plan.status == "optimal"
    assert check_plan(inst, plan) == []


def test_def_loader_reads_levels_salaries_and_predecessors(tmp_path: Path) -> None:
    inst = load_instance(write(tmp_path, "3_2_2_2.def", DEF))
    assert inst.resources[0].cost_rate == 1050 and inst.resources[0].skills == {"q0": 1, "q1": 0}
    assert inst.requests[2].after == ["t1", "t2"]
    plan = solve(inst, mode="makespan", time_limit_s=5, num_workers=1)
    assert plan.objective.makespan == 9 and plan.checked  # max(4, 3) + 5


def test_makespan_mode_raises_when_the_horizon_cannot_hold_everything(tmp_path: Path) -> None:
    inst = load_instance(write(tmp_path, "3_2_2_2.def", DEF))
    impossible = inst.model_copy(update={"resources": inst.resources[:1]})  # nobody has Q1: 2
    with pytest.raises(NoFeasiblePlan):
        solve(impossible, mode="makespan", time_limit_s=1, num_workers=1)


def test_unknown_format_and_broken_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(InstanceFormatError):
        load_instance(write(tmp_path, "x.txt", "nothing"))
    with pytest.raises(InstanceFormatError):
        load_instance(write(tmp_path, "bad.dzn", "nActs = 3;"))


def test_best_known_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "best.csv",
        "subset,instance,proven_optimal,naive_lb,best_makespan,first_solution,chuffed_runtime_s\n"
        "set1a,tiny.dzn,1,4,5,6,0.1\n",
    )
    best = load_best_known(path)["tiny"]
    assert best.makespan == 5 and best.proven_optimal


@pytest.mark.slow
def test_shared_small_instances_reach_their_published_optimum() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED}")
    best = load_best_known(SHARED / "mspsp-instlib" / "best-known.csv")
    for name in ["inst_set2c_sf0_nc2.1_n20_l3_m4_00", "inst_set1a_sf0.5_nc1.5_n20_m10_00"]:
        inst = load_instance(SHARED / "mspsp-instlib" / f"{name}.dzn")
        plan = solve(inst, mode="makespan", time_limit_s=10, num_workers=2, seed=0)
        assert plan.checked
        assert plan.objective.makespan == best[name].makespan
    inst = load_instance(SHARED / "imopse" / "15_6_10_6.def")
    plan = solve(inst, mode="makespan", time_limit_s=10, num_workers=2, seed=0)
    assert plan.objective.makespan == 102 and plan.checked
