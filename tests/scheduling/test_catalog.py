"""The preparation's indexes against the plain definition of who may serve what.

`prepare` answers eligibility from `CatalogIndex` (resources by skill, type and id,
agreements by pair, answers memoised). The reference below is deliberately naive: every
requirement against every resource, every agreement read in full. On random small
catalogs (agreements by kind, by listed resources, with and without approval; skills at
levels; device types; named resources, some unknown) both must give the same matching,
eligible and approval sets and the same prices.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling import Agreement, Instance, Request, Requirement, Resource
from scheduling.eligibility import prepare

UNITS = ["u1", "u2", "u3"]
SKILLS = ["a", "b", "c"]
TYPES = ["scope", "drone"]


def naive_matches(res: Resource, q: Requirement) -> bool:
    """Whether `res` has what `q` asks for, read straight from the schema."""
    if q.resource_id is not None:
        return res.id == q.resource_id
    if q.device_type is not None:
        return res.kind == "device" and res.device_type == q.device_type
    return q.skill in res.skills and res.skills[q.skill] >= q.min_level


def naive_borrow(inst: Instance, res: Resource, unit: str) -> tuple[bool, bool]:
    """(allowed, needs approval), every agreement of the instance read."""
    if res.home_unit == unit:
        return True, False
    covering = [
        a
        for a in inst.agreements
        if a.borrower == unit
        and a.lender == res.home_unit
        and (a.kinds is None or res.kind in a.kinds)
        and (a.resource_ids is None or res.id in a.resource_ids)
    ]
    return bool(covering), bool(covering) and all(a.needs_approval for a in covering)


@st.composite
def catalogs(draw: st.DrawFn) -> Instance:
    resources = []
    for k in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            resources.append(
                Resource(
                    id=f"x{k}",
                    kind="device",
                    home_unit=draw(st.sampled_from(UNITS)),
                    device_type=draw(st.sampled_from(TYPES)),
                    cost_rate=draw(st.integers(0, 5)),
                )
            )
        else:
            skills = draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(0, 5)))
            resources.append(
                Resource(
                    id=f"x{k}",
                    home_unit=draw(st.sampled_from(UNITS)),
                    skills=skills,
                    cost_rate=draw(st.integers(0, 5)),
                )
            )
    ids = [f"x{k}" for k in range(10)]  # some name resources that do not exist
    agreements = [
        Agreement(
            lender=draw(st.sampled_from(UNITS)),
            borrower=draw(st.sampled_from(UNITS)),
            kinds=draw(st.none() | st.lists(st.sampled_from(["expert", "device"]), max_size=2)),
            resource_ids=draw(st.none() | st.lists(st.sampled_from(ids), max_size=4)),
            needs_approval=draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 6)))
    ]
    requirement = st.one_of(
        st.builds(
            Requirement,
            skill=st.sampled_from(SKILLS),
            min_level=st.integers(0, 6),
            quantity=st.integers(1, 2),
        ),
        st.builds(Requirement, device_type=st.sampled_from([*TYPES, "none"])),
        st.builds(Requirement, resource_id=st.sampled_from(ids)),
    )
    requests = [
        Request(
            id=f"q{q}",
            project="p",
            unit=draw(st.sampled_from(UNITS)),
            requirements=draw(st.lists(requirement, min_size=1, max_size=3)),
            duration=draw(st.integers(1, 4)),
            costs=draw(st.dictionaries(st.sampled_from(ids), st.integers(0, 9))),
        )
        for q in range(draw(st.integers(1, 6)))
    ]
    return Instance(horizon=10, resources=resources, requests=requests, agreements=agreements)


@settings(max_examples=300, deadline=None)
@given(catalogs())
def test_indexed_eligibility_is_the_plain_definition(inst: Instance) -> None:
    prep = prepare(inst)
    everyone = range(len(inst.resources))
    for r, request in enumerate(inst.requests):
        for i, q in enumerate(request.requirements):
            matching = [k for k in everyone if naive_matches(inst.resources[k], q)]
            eligible = [
                k for k in matching if naive_borrow(inst, inst.resources[k], request.unit)[0]
            ]
            assert prep.matching[r][i] == matching
            assert prep.eligible[r][i] == eligible
            for k in eligible:
                needs = naive_borrow(inst, inst.resources[k], request.unit)[1]
                assert ((r, k) in prep.approval) == needs
                res = inst.resources[k]
                price = request.costs.get(res.id, res.cost_rate * request.duration)
                assert prep.price(r, k) == price
    approvals = {(r, k) for r, k in prep.approval}
    assert all(k in prep.candidates(r) for r, k in approvals)
