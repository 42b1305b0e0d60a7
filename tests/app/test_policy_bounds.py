"""Integer path and query parameters: the bound the OpenAPI document states is the bound
validation keeps (issue 12, input hygiene): one past it is a 400 naming the parameter,
the bound itself reaches the service (404: no such pledge)."""

from __future__ import annotations

from typing import Any

from app.auth.models import Role
from tests.app.conftest import World


def test_pledge_and_entry_numbers_are_bounded_as_documented(client: Any, world: World) -> None:
    admin = world.user("root", "A", Role.ADMIN)
    document = client.get("/schema/openapi.json").json()
    (parameter,) = document["paths"]["/pledges/{pledge_id}/met"]["post"]["parameters"]
    bound = int(parameter["schema"]["maximum"])  # as a client reads the JSON number
    r = client.post(f"/pledges/{bound}/met", headers=admin)
    assert r.status_code == 404, r.text
    r = client.post(f"/pledges/{bound + 1}/met", headers=admin)
    assert r.status_code == 400 and r.json()["field"] == "pledge_id", r.text
    r = client.get(
        f"/projects/{world.units['A']}/funds/entries", params={"after": bound + 1}, headers=admin
    )
    assert r.status_code == 400 and r.json()["field"] == "after", r.text


def test_optional_fields_keep_their_bounds_in_the_document(client: Any) -> None:
    """``name: Name | None`` is documented with ``Name``'s lengths, as validation keeps them."""
    schemas = client.get("/schema/openapi.json").json()["components"]["schemas"]

    def branch(model: str, field: str) -> dict[str, Any]:
        (found,) = [b for b in schemas[model]["properties"][field]["oneOf"] if b["type"] != "null"]
        return dict(found)

    assert branch("UnitUpdate", "name") == {"type": "string", "minLength": 1, "maxLength": 200}
    assert branch("DeviceTypeUpdate", "setup_minutes")["minimum"] == 0
    assert branch("ProjectUpdate", "shares")["minItems"] == 1
