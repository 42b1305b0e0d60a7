"""Authorization: roles × routes × own/other unit (OWASP API1 object level, API5 function level).

The matrix below is the specification. Each role is held by one user of unit A ("own");
unit B ("other") has its own users, catalog, agreements and projects, and no agreement
shows B's catalog to A. A cell is the status the route answers for that role acting on an
object of its own unit or of the other unit: 2xx allowed, 403 the role is not granted,
404 the object is invisible to the caller (its existence is not leaked).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.agreements.models import AgreementScope
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.projects import services as projects
from app.units.models import Unit
from tests.app import factories as f
from tests.app.conftest import World

ROLES = (
    Role.ADMIN,
    Role.UNIT_MANAGER,
    Role.RESOURCE_MANAGER,
    Role.REQUESTER,
    Role.PROJECT_LEAD,
    Role.AUDITOR,
)

MATRIX = """
route                 | own:   adm  um  rm req  pl aud | other: adm  um  rm req  pl aud
units.list            |        200 200 200 200 200 200 |        200 200 200 200 200 200
units.create          |        201 403 403 403 403 403 |        201 403 403 403 403 403
units.get             |        200 200 200 200 200 200 |        200 200 200 200 200 200
units.update          |        200 200 403 403 403 403 |        200 403 403 403 403 403
units.retire          |        200 403 403 403 403 403 |        200 403 403 403 403 403
users.me              |        200 200 200 200 200 200 |        200 200 200 200 200 200
users.list            |        200 200 200 200 200 200 |        200 200 200 200 200 200
users.create          |        201 201 403 403 403 403 |        201 403 403 403 403 403
users.get             |        200 200 404 404 404 200 |        200 404 404 404 404 200
users.update          |        200 200 404 404 404 403 |        200 404 404 404 404 403
users.keys            |        200 200 404 404 404 200 |        200 404 404 404 404 200
users.issue_key       |        201 201 404 404 404 403 |        201 404 404 404 404 403
keys.revoke           |        200 200 404 404 404 403 |        200 404 404 404 404 403
skills.list           |        200 200 200 200 200 200 |        200 200 200 200 200 200
skills.create         |        201 403 403 403 403 403 |        201 403 403 403 403 403
skills.get            |        200 200 200 200 200 200 |        200 200 200 200 200 200
skills.update         |        200 403 403 403 403 403 |        200 403 403 403 403 403
skills.retire         |        200 403 403 403 403 403 |        200 403 403 403 403 403
device_types.list     |        200 200 200 200 200 200 |        200 200 200 200 200 200
device_types.create   |        201 403 403 403 403 403 |        201 403 403 403 403 403
device_types.get      |        200 200 200 200 200 200 |        200 200 200 200 200 200
device_types.update   |        200 403 403 403 403 403 |        200 403 403 403 403 403
device_types.retire   |        200 403 403 403 403 403 |        200 403 403 403 403 403
experts.list          |        200 200 200 200 200 200 |        200 200 200 200 200 200
experts.create        |        201 201 201 403 403 403 |        201 403 403 403 403 403
experts.get           |        200 200 200 200 200 200 |        200 404 404 404 404 200
experts.update        |        200 200 200 403 403 403 |        200 404 404 404 404 403
experts.retire        |        200 200 200 403 403 403 |        200 404 404 404 404 403
experts.leave.list    |        200 200 200 200 200 200 |        200 404 404 404 404 200
experts.leave.add     |        201 201 201 403 403 403 |        201 404 404 404 404 403
experts.leave.delete  |        204 204 204 403 403 403 |        204 404 404 404 404 403
devices.list          |        200 200 200 200 200 200 |        200 200 200 200 200 200
devices.create        |        201 201 201 403 403 403 |        201 403 403 403 403 403
devices.get           |        200 200 200 200 200 200 |        200 404 404 404 404 200
devices.update        |        200 200 200 403 403 403 |        200 404 404 404 404 403
devices.retire        |        200 200 200 403 403 403 |        200 404 404 404 404 403
devices.blackouts.list|        200 200 200 200 200 200 |        200 404 404 404 404 200
devices.blackouts.add |        201 201 201 403 403 403 |        201 404 404 404 404 403
devices.blackouts.del |        204 204 204 403 403 403 |        204 404 404 404 404 403
agreements.list       |        200 200 200 200 200 200 |        200 200 200 200 200 200
agreements.create     |        201 201 403 403 403 403 |        201 403 403 403 403 403
agreements.get        |        200 200 200 200 200 200 |        200 404 404 404 404 200
agreements.update     |        200 200 403 403 403 403 |        200 404 404 404 404 403
agreements.terminate  |        200 200 403 403 403 403 |        200 404 404 404 404 403
projects.list         |        200 200 200 200 200 200 |        200 200 200 200 200 200
projects.create       |        201 201 403 403 201 403 |        201 403 403 403 403 403
projects.get          |        200 200 200 200 200 200 |        200 404 404 404 404 200
projects.update       |        200 200 403 403 200 403 |        200 404 404 404 404 403
projects.members.add  |        200 200 403 403 200 403 |        200 404 404 404 404 403
projects.members.del  |        200 200 403 403 200 403 |        200 404 404 404 404 403
projects.close        |        200 200 403 403 200 403 |        200 404 404 404 404 403
audit.list            |        200 200 403 403 403 200 |        200 200 403 403 403 200
"""


def _parse(table: str) -> dict[str, dict[tuple[str, Role], int]]:
    out: dict[str, dict[tuple[str, Role], int]] = {}
    for line in table.strip().splitlines()[1:]:
        name, own, other = (part.strip() for part in line.split("|"))
        cells: dict[tuple[str, Role], int] = {}
        for scope, codes in (("own", own), ("other", other)):
            for role, code in zip(ROLES, codes.split(), strict=True):
                cells[(scope, role)] = int(code)
        out[name] = cells
    return out


EXPECTED = _parse(MATRIX)

Request = tuple[str, str, dict[str, Any] | None]


@dataclass
class Scene:
    """Unit A (every role), unit B (other), unit C (a third party), and their objects."""

    world: World
    ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def make(self, build: Callable[[Any], Any]) -> Any:
        """Run ``build(session)`` in a committed session; returns its result's id."""
        with self.world.session() as s:
            return build(s).id

    def unit(self, scope: str) -> uuid.UUID:
        """Unit A or B."""
        return self.ids["A" if scope == "own" else "B"]

    def of(self, name: str, scope: str) -> uuid.UUID:
        """An object of unit A or B, e.g. ``of("expert", "own")``."""
        return self.ids[f"{name}_{'A' if scope == 'own' else 'B'}"]


def _scene(world: World) -> Scene:
    scene = Scene(world)
    for code in ("A", "B", "C"):
        scene.ids[code] = world.unit(code)
    for role in ROLES:
        world.user(role.value, "A", role)
    world.user("pl_B", "B", Role.PROJECT_LEAD)
    ids = scene.ids
    with world.session() as s:
        ids["skill"] = f.skill(s).id
        ids["dtype"] = f.device_type(s).id
        for code in ("A", "B"):
            ids[f"peer_{code}"] = f.user(s, ids[code]).id
            ids[f"expert_{code}"] = f.expert(s, ids[code], {ids["skill"]: 3}).id
            ids[f"device_{code}"] = f.device(s, ids[code], ids["dtype"]).id
            ids[f"agreement_{code}"] = f.agreement(s, ids[code], ids["C"]).id
        ids["project_A"] = f.project(s, ids["A"], world.users["project_lead"]).id
        ids["project_B"] = f.project(
            s, ids["B"], world.users["pl_B"], {ids["B"]: 6000, ids["C"]: 4000}
        ).id
    return scene


def _fresh_member(scene: Scene, scope: str) -> tuple[uuid.UUID, uuid.UUID]:
    project_id = scene.of("project", scope)
    with scene.world.session() as s:
        member = f.user(s, scene.unit(scope))
        projects.add_member(s, SYSTEM, project_id, member.id)
    return project_id, member.id


def _leave_route(kind: str, sub: str) -> dict[str, Callable[[Scene, str], Request]]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)
    body = {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}
    model = kind[:-1]

    def delete(sc: Scene, scope: str) -> Request:
        with sc.world.session() as s:
            from app.catalog.models import Device, Expert

            resource = s.get(Expert if model == "expert" else Device, sc.of(model, scope))
            period_id = f.period(s, resource).id
        return "DELETE", f"/{kind}/{sc.of(model, scope)}/{sub}/{period_id}", None

    short = "del" if sub == "blackouts" else "delete"
    return {
        f"{kind}.{sub}.list": lambda sc, scope: (
            "GET",
            f"/{kind}/{sc.of(model, scope)}/{sub}",
            None,
        ),
        f"{kind}.{sub}.add": lambda sc, scope: (
            "POST",
            f"/{kind}/{sc.of(model, scope)}/{sub}",
            body,
        ),
        f"{kind}.{sub}.{short}": delete,
    }


def _taxon_routes(kind: str, path: str, key: str) -> dict[str, Callable[[Scene, str], Request]]:
    maker = f.skill if key == "skill" else f.device_type
    return {
        f"{kind}.list": lambda sc, scope: ("GET", path, None),
        f"{kind}.create": lambda sc, scope: ("POST", path, {"name": f"New {kind} {f.n()}"}),
        f"{kind}.get": lambda sc, scope: ("GET", f"{path}/{sc.ids[key]}", None),
        f"{kind}.update": lambda sc, scope: (
            "PATCH",
            f"{path}/{sc.ids[key]}",
            {"description": "changed"},
        ),
        f"{kind}.retire": lambda sc, scope: ("POST", f"{path}/{sc.make(maker)}/retire", {}),
    }


def _resource_routes(kind: str) -> dict[str, Callable[[Scene, str], Request]]:
    model = kind[:-1]

    def create_body(sc: Scene, scope: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "unit_id": str(sc.unit(scope)),
            "name": f"New {model}",
            "time_zone": "Europe/Paris",
        }
        if model == "expert":
            body["working_hours"] = {"mon": [["09:00", "17:00"]]}
        else:
            body["device_type_id"] = str(sc.ids["dtype"])
        return body

    def fresh(sc: Scene, scope: str) -> uuid.UUID:
        if model == "expert":
            return sc.make(lambda s: f.expert(s, sc.unit(scope)))  # type: ignore[no-any-return]
        return sc.make(lambda s: f.device(s, sc.unit(scope), sc.ids["dtype"]))  # type: ignore[no-any-return]

    return {
        f"{kind}.list": lambda sc, scope: ("GET", f"/{kind}", None),
        f"{kind}.create": lambda sc, scope: ("POST", f"/{kind}", create_body(sc, scope)),
        f"{kind}.get": lambda sc, scope: ("GET", f"/{kind}/{sc.of(model, scope)}", None),
        f"{kind}.update": lambda sc, scope: (
            "PATCH",
            f"/{kind}/{fresh(sc, scope)}",
            {"name": "Renamed"},
        ),
        f"{kind}.retire": lambda sc, scope: ("POST", f"/{kind}/{fresh(sc, scope)}/retire", {}),
    }


def _project_body(sc: Scene, scope: str) -> dict[str, Any]:
    lead_user = sc.world.users["project_lead" if scope == "own" else "pl_B"]
    unit_id = sc.unit(scope)
    return {
        "name": "New project",
        "code": f"NP-{f.n()}",
        "lead_unit_id": str(unit_id),
        "lead_user_id": str(lead_user),
        "start_date": f.TODAY.isoformat(),
        "end_date": (f.TODAY + timedelta(days=90)).isoformat(),
        "currency": "EUR",
        "shares": [{"unit_id": str(unit_id), "share_bp": 10_000}],
    }


def _fresh_project(sc: Scene, scope: str) -> uuid.UUID:
    lead_user = sc.world.users["project_lead" if scope == "own" else "pl_B"]
    return sc.make(lambda s: f.project(s, sc.unit(scope), lead_user))  # type: ignore[no-any-return]


def _fresh_key(sc: Scene, scope: str) -> uuid.UUID:
    with sc.world.session() as s:
        key, _ = f.key(s, sc.of("peer", scope))
        return key.id


ROUTES: dict[str, Callable[[Scene, str], Request]] = {
    "units.list": lambda sc, scope: ("GET", "/units", None),
    "units.create": lambda sc, scope: (
        "POST",
        "/units",
        {"name": f"N {f.n()}", "code": f"N{f.n()}"},
    ),
    "units.get": lambda sc, scope: ("GET", f"/units/{sc.unit(scope)}", None),
    "units.update": lambda sc, scope: ("PATCH", f"/units/{sc.unit(scope)}", {"description": "x"}),
    "units.retire": lambda sc, scope: ("POST", f"/units/{sc.unit(scope)}/retire", {}),
    "users.me": lambda sc, scope: ("GET", "/users/me", None),
    "users.list": lambda sc, scope: ("GET", "/users", None),
    "users.create": lambda sc, scope: (
        "POST",
        "/users",
        {
            "unit_id": str(sc.unit(scope)),
            "name": "New user",
            "email": f"new{f.n()}@example.org",
            "roles": ["requester"],
        },
    ),
    "users.get": lambda sc, scope: ("GET", f"/users/{sc.of('peer', scope)}", None),
    "users.update": lambda sc, scope: (
        "PATCH",
        f"/users/{sc.make(lambda s: f.user(s, sc.unit(scope)))}",
        {"name": "Renamed"},
    ),
    "users.keys": lambda sc, scope: ("GET", f"/users/{sc.of('peer', scope)}/api-keys", None),
    "users.issue_key": lambda sc, scope: (
        "POST",
        f"/users/{sc.of('peer', scope)}/api-keys",
        {"name": "laptop"},
    ),
    "keys.revoke": lambda sc, scope: ("POST", f"/api-keys/{_fresh_key(sc, scope)}/revoke", {}),
    **_taxon_routes("skills", "/skills", "skill"),
    **_taxon_routes("device_types", "/device-types", "dtype"),
    **_resource_routes("experts"),
    **_leave_route("experts", "leave"),
    **_resource_routes("devices"),
    **_leave_route("devices", "blackouts"),
    "agreements.list": lambda sc, scope: ("GET", "/agreements", None),
    "agreements.create": lambda sc, scope: (
        "POST",
        "/agreements",
        {
            "lender_unit_id": str(sc.unit(scope)),
            "borrower_unit_id": str(sc.ids["C"]),
            "scope": "all",
            "valid_from": f.TODAY.isoformat(),
        },
    ),
    "agreements.get": lambda sc, scope: ("GET", f"/agreements/{sc.of('agreement', scope)}", None),
    "agreements.update": lambda sc, scope: (
        "PATCH",
        f"/agreements/{sc.of('agreement', scope)}",
        {"notes": "changed"},
    ),
    "agreements.terminate": lambda sc, scope: (
        "POST",
        f"/agreements/{sc.make(lambda s: f.agreement(s, sc.unit(scope), sc.ids['C']))}/terminate",
        {"reason": "test"},
    ),
    "projects.list": lambda sc, scope: ("GET", "/projects", None),
    "projects.create": lambda sc, scope: ("POST", "/projects", _project_body(sc, scope)),
    "projects.get": lambda sc, scope: ("GET", f"/projects/{sc.of('project', scope)}", None),
    "projects.update": lambda sc, scope: (
        "PATCH",
        f"/projects/{sc.of('project', scope)}",
        {"description": "changed"},
    ),
    "projects.members.add": lambda sc, scope: (
        "POST",
        f"/projects/{sc.of('project', scope)}/members",
        {"user_id": str(sc.make(lambda s: f.user(s, sc.unit(scope))))},
    ),
    "projects.members.del": lambda sc, scope: (
        "DELETE",
        "/projects/{}/members/{}".format(*_fresh_member(sc, scope)),
        None,
    ),
    "projects.close": lambda sc, scope: (
        "POST",
        f"/projects/{_fresh_project(sc, scope)}/close",
        {"reason": "done"},
    ),
    "audit.list": lambda sc, scope: ("GET", "/audit-events", None),
}


def test_matrix_and_routes_agree() -> None:
    """Every route of the matrix has a request builder, and every builder a matrix row."""
    assert set(EXPECTED) == set(ROUTES)


FOUNDATION = {
    "units",
    "users",
    "api-keys",
    "skills",
    "device-types",
    "experts",
    "devices",
    "agreements",
    "projects",
    "audit-events",
}


def test_matrix_covers_every_foundation_route(app: Any) -> None:
    """No route of the foundation's contexts escapes the matrix."""
    routes = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", set())
        if method not in {"HEAD", "OPTIONS"}
        and route.path.split("/")[1] in FOUNDATION
        # funds and busy-time import have their own authorization tests
        # (test_funds.py, test_feeds.py)
        and "/funds" not in route.path
        and not route.path.endswith("/busy-import")
    }
    assert len(routes) == len(ROUTES), sorted(routes)


@pytest.fixture(scope="module")
def scene(module_app: Any) -> Scene:
    """One scene per engine for the whole matrix (mutating cells act on fresh objects)."""
    return _scene(World(app=module_app))


@pytest.mark.parametrize("route", list(ROUTES))
def test_authorization_matrix(route: str, module_client: Any, scene: Scene) -> None:
    """Each role, on its own unit's object and on another unit's, gets the status of the table."""
    world, wrong = scene.world, []
    try:
        for scope in ("own", "other"):
            for role in ROLES:
                method, path, body = ROUTES[route](scene, scope)
                r = module_client.request(
                    method, path, json=body, headers=world.headers(role.value)
                )
                expected = EXPECTED[route][(scope, role)]
                if r.status_code != expected:
                    wrong.append(
                        f"{scope:5} {role.value:16} {method} {path}: "
                        f"{r.status_code} (expected {expected}) {r.text[:160]}"
                    )
                elif r.status_code >= 400:
                    assert r.headers["content-type"].startswith("application/problem+json")
                    assert r.json()["status"] == expected
    finally:
        if route == "units.retire":  # the admin retired units A and B: bring them back
            with world.session() as s:
                s.execute(update(Unit).values(retired_at=None))
    assert not wrong, "\n".join(wrong)


# --- visibility through agreements ------------------------------------------------------


@dataclass
class Catalog:
    """Lender L's catalog, as borrower B is to see (or not see) it."""

    lender: uuid.UUID
    borrower: uuid.UUID
    skill: uuid.UUID
    other_skill: uuid.UUID
    dtype: uuid.UUID
    other_dtype: uuid.UUID
    experts: dict[str, uuid.UUID]
    devices: dict[str, uuid.UUID]


@pytest.fixture
def catalog(world: World) -> Catalog:
    """Lender with two experts (skill / other skill) and two devices (type / other type)."""
    lender, borrower = world.unit("L"), world.unit("B")
    world.user("borrower", "B", Role.REQUESTER)
    world.user("stranger", "S", Role.UNIT_MANAGER)
    with world.session() as s:
        sk, osk = f.skill(s).id, f.skill(s).id
        dt, odt = f.device_type(s).id, f.device_type(s).id
        experts = {"e1": f.expert(s, lender, {sk: 2}).id, "e2": f.expert(s, lender, {osk: 5}).id}
        devices = {"d1": f.device(s, lender, dt).id, "d2": f.device(s, lender, odt).id}
        for rid in (*experts.values(), *devices.values()):
            f.period(s, s.get(_model(rid, experts), rid))
    return Catalog(lender, borrower, sk, osk, dt, odt, experts, devices)


def _model(rid: uuid.UUID, experts: dict[str, uuid.UUID]) -> Any:
    from app.catalog.models import Device, Expert

    return Expert if rid in experts.values() else Device


def _seen(client: Any, world: World, who: str, cat: Catalog) -> set[str]:
    """Names (e1, e2, d1, d2) of the lender's resources ``who`` sees, checked four ways."""
    names = {str(v): k for k, v in (*cat.experts.items(), *cat.devices.items())}
    headers = world.headers(who)
    listed = set()
    for kind in ("experts", "devices"):
        r = client.get(f"/{kind}", params={"unit_id": str(cat.lender)}, headers=headers)
        assert r.status_code == 200
        listed |= {names[i["id"]] for i in r.json()["items"] if i["id"] in names}
        assert r.json()["total"] == len(r.json()["items"])
    by_id = set()
    for rid, name in names.items():
        kind, sub = ("experts", "leave") if name.startswith("e") else ("devices", "blackouts")
        r = client.get(f"/{kind}/{rid}", headers=headers)
        assert r.status_code in (200, 404), r.text
        periods = client.get(f"/{kind}/{rid}/{sub}", headers=headers)
        assert periods.status_code == r.status_code
        if r.status_code == 200:
            by_id.add(name)
            # a borrower sees when a resource is away, not why
            assert [p["note"] for p in periods.json()["items"]] == [""]
    assert listed == by_id
    return listed


def _agree(world: World, cat: Catalog, scope: AgreementScope, **kw: Any) -> uuid.UUID:
    with world.session() as s:
        return f.agreement(s, cat.lender, cat.borrower, scope, **kw).id


def test_no_agreement_shows_nothing(client: Any, world: World, catalog: Catalog) -> None:
    assert _seen(client, world, "borrower", catalog) == set()


def test_scope_all_shows_everything(client: Any, world: World, catalog: Catalog) -> None:
    _agree(world, catalog, AgreementScope.ALL)
    assert _seen(client, world, "borrower", catalog) == {"e1", "e2", "d1", "d2"}
    # the agreement is one-way: the lender does not see the borrower's catalog
    with world.session() as s:
        f.expert(s, catalog.borrower)
    world.user("lender", "L", Role.REQUESTER)
    r = client.get(
        "/experts", params={"unit_id": str(catalog.borrower)}, headers=world.headers("lender")
    )
    assert r.json()["items"] == []
    assert _seen(client, world, "stranger", catalog) == set()


def test_scope_resources_shows_the_listed_ones(client: Any, world: World, catalog: Catalog) -> None:
    _agree(
        world,
        catalog,
        AgreementScope.RESOURCES,
        resource_ids=[catalog.experts["e2"], catalog.devices["d1"]],
    )
    assert _seen(client, world, "borrower", catalog) == {"e2", "d1"}
    assert _seen(client, world, "stranger", catalog) == set()


def test_scope_categories_shows_by_skill_and_type(
    client: Any, world: World, catalog: Catalog
) -> None:
    _agree(world, catalog, AgreementScope.CATEGORIES, skill_ids=[catalog.skill])
    assert _seen(client, world, "borrower", catalog) == {"e1"}
    _agree(world, catalog, AgreementScope.CATEGORIES, device_type_ids=[catalog.other_dtype])
    assert _seen(client, world, "borrower", catalog) == {"e1", "d2"}


def test_terminated_agreement_shows_nothing(client: Any, world: World, catalog: Catalog) -> None:
    world.user("lender_um", "L", Role.UNIT_MANAGER)
    agreement_id = _agree(world, catalog, AgreementScope.ALL)
    assert _seen(client, world, "borrower", catalog) == {"e1", "e2", "d1", "d2"}
    r = client.post(
        f"/agreements/{agreement_id}/terminate",
        json={"reason": "ended"},
        headers=world.headers("lender_um"),
    )
    assert r.status_code == 200, r.text
    assert _seen(client, world, "borrower", catalog) == set()


@pytest.mark.parametrize(
    ("valid_from", "valid_until"),
    [(-60, -1), (5, 30)],
    ids=["expired", "not-yet-valid"],
)
def test_agreement_outside_its_period_shows_nothing(
    client: Any, world: World, catalog: Catalog, valid_from: int, valid_until: int
) -> None:
    _agree(
        world,
        catalog,
        AgreementScope.ALL,
        valid_from=f.TODAY + timedelta(days=valid_from),
        valid_until=f.TODAY + timedelta(days=valid_until),
    )
    assert _seen(client, world, "borrower", catalog) == set()


def test_categories_mix_skills_and_types(client: Any, world: World, catalog: Catalog) -> None:
    """One categories agreement lists a skill and a device type: exactly those show."""
    _agree(
        world,
        catalog,
        AgreementScope.CATEGORIES,
        skill_ids=[catalog.other_skill],
        device_type_ids=[catalog.dtype],
    )
    assert _seen(client, world, "borrower", catalog) == {"e2", "d1"}


# --- authentication -----------------------------------------------------------------------


def _assert_401(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["status"] == 401


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer cpl_unknown", "Bearer nope"],
)
def test_missing_or_unknown_key_is_401(client: Any, world: World, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    _assert_401(client.get("/units", headers=headers))
    _assert_401(client.post("/units", json={"name": "X", "code": "X"}, headers=headers))


def test_revoked_key_is_401(client: Any, world: World) -> None:
    admin = world.user("admin", "A", Role.ADMIN)
    user = world.user("someone", "A", Role.REQUESTER)
    assert client.get("/users/me", headers=user).status_code == 200
    keys = client.get(f"/users/{world.users['someone']}/api-keys", headers=admin).json()["items"]
    r = client.post(f"/api-keys/{keys[0]['id']}/revoke", json={"reason": "lost"}, headers=admin)
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    _assert_401(client.get("/users/me", headers=user))


def test_deactivated_user_is_401(client: Any, world: World) -> None:
    manager = world.user("manager", "A", Role.UNIT_MANAGER)
    user = world.user("leaver", "A", Role.REQUESTER)
    r = client.patch(f"/users/{world.users['leaver']}", json={"active": False}, headers=manager)
    assert r.status_code == 200, r.text
    _assert_401(client.get("/units", headers=user))
    r = client.patch(f"/users/{world.users['leaver']}", json={"active": True}, headers=manager)
    assert client.get("/units", headers=user).status_code == 200


def test_auditor_reads_everything_but_writes_nothing(client: Any, world: World) -> None:
    auditor = world.user("auditor", "A", Role.AUDITOR)
    other = world.unit("B")
    with world.session() as s:
        expert = f.expert(s, other)
    assert client.get(f"/experts/{expert.id}", headers=auditor).status_code == 200
    assert client.get("/audit-events", headers=auditor).status_code == 200
    for method, path, body in [
        ("PATCH", f"/experts/{expert.id}", {"name": "x"}),
        ("POST", f"/experts/{expert.id}/retire", {}),
        ("POST", "/units", {"name": "X", "code": "X"}),
        ("PATCH", f"/units/{world.units['A']}", {"description": "x"}),
        ("POST", "/skills", {"name": "X"}),
    ]:
        r = client.request(method, path, json=body, headers=auditor)
        assert r.status_code == 403, (method, path, r.text)


@pytest.mark.parametrize("granted", ["admin", "auditor"])
def test_unit_manager_cannot_grant_admin_or_auditor(
    client: Any, world: World, granted: str
) -> None:
    manager = world.user("manager", "A", Role.UNIT_MANAGER)
    world.user("staff", "A", Role.REQUESTER)
    body = {"unit_id": str(world.units["A"]), "name": "N", "email": "n@a.org", "roles": [granted]}
    r = client.post("/users", json=body, headers=manager)
    assert r.status_code == 403, r.text
    assert granted in r.json()["detail"]
    r = client.patch(f"/users/{world.users['staff']}", json={"roles": [granted]}, headers=manager)
    assert r.status_code == 403, r.text
    r = client.patch(
        f"/users/{world.users['manager']}",
        json={"roles": ["unit_manager", granted]},
        headers=manager,
    )
    assert r.status_code == 403, r.text
    # an admin may
    admin = world.user("root", "A", Role.ADMIN)
    r = client.patch(f"/users/{world.users['staff']}", json={"roles": [granted]}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == [granted]
