from app.auth.models import Role


def test_units_roundtrip(client, world):
    admin = world.user("root", "HQ", Role.ADMIN)
    r = client.post("/units", json={"name": "Water Board", "code": "WB"}, headers=admin)
    assert r.status_code == 201, r.text
    r = client.get("/units", headers=admin)
    assert r.status_code == 200
    assert {u["code"] for u in r.json()["items"]} == {"HQ", "WB"}
    r = client.get("/units")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    r = client.post("/units", json={"name": "", "code": "x y"}, headers=admin)
    assert r.status_code == 400, r.text
    print(r.json())
