"""Free-slot search looks ahead in growing horizons; it must still find the earliest slot."""

from __future__ import annotations

from typing import Any

from tests.app.booking_world import build


def test_search_finds_the_earliest_slot_days_ahead(client: Any, world: Any) -> None:
    w = build(world)
    # leave Monday to Wednesday: the first free hour is Thursday 09:00 Berlin (08:00 UTC)
    leave = client.post(f"/experts/{w.expert}/leave", headers=w.manager, json={
        "start": "2027-03-01T00:00:00+01:00", "end": "2027-03-04T00:00:00+01:00"})
    assert leave.status_code == 201, leave.text
    booked = client.post("/bookings", headers=w.requester, json={
        "resource_id": str(w.expert), "project_id": str(w.project),
        "start": "2027-03-04T09:00:00+01:00", "end": "2027-03-04T11:00:00+01:00"})
    assert booked.status_code == 201, booked.text
    week = {"start": "2027-03-01T00:00:00Z", "end": "2027-03-15T00:00:00Z"}

    def search(minutes: int, **range_: str) -> Any:
        answer = client.get("/availability/slots", headers=w.requester, params={
            "skill_id": str(w.skill), "duration_minutes": minutes, **week, **range_})
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert [(s["start"], s["end"]) for s in search(60)] == [
        ("2027-03-04T10:00:00Z", "2027-03-04T11:00:00Z")]
    # six hours fit only from 11:00 to 17:00 on Thursday
    assert search(360)[0]["start"] == "2027-03-04T10:00:00Z"
    # seven do not fit on Thursday any more: Friday 09:00
    assert search(420)[0]["start"] == "2027-03-05T08:00:00Z"
    free = client.get(f"/availability/resources/{w.expert}", headers=w.requester,
                      params=week).json()["free"]
    assert free[0][0] == "2027-03-04T10:00:00Z"
    # nothing in a range that holds only the leave
    assert search(60, end="2027-03-04T08:00:00Z") == []
