"""Dashboard pages over plain HTTP: the same answers as the API, errors naming the field."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from litestar.testing import TestClient

from app.allocation import services as runs
from app.allocation.schemas import RunCreate
from app.auth.models import Role, User
from app.bookings import services
from app.bookings.models import BookingStatus
from app.catalog.models import Resource
from app.notifications import kinds
from app.notifications.outbox import emit
from app.projects.models import Project
from app.ui.sessions import actor_of
from tests.app import booking_world
from tests.app.conftest import World
from tests.ui.conftest import sign_in


def test_the_fund_statement_shows_the_running_balance_and_hides_other_units(
    client: TestClient[Any], world: World
) -> None:
    lending = booking_world.build(world)
    sign_in(client, world.tokens["lead"])
    page = client.get(f"/ui/projects/{lending.project}/funds")
    assert page.status_code == 200
    assert re.search(r'id="available">1000000\.00 EUR<', page.text)
    assert "<polyline" in page.text  # the chart of cash over time
    client.cookies.clear()
    sign_in(client, world.tokens["out"])
    assert client.get(f"/ui/projects/{lending.project}/funds").status_code == 404


def test_a_reports_csv_is_the_apis_csv(client: TestClient[Any], world: World) -> None:
    booking_world.build(world)
    sign_in(client, world.tokens["lead"])
    period = "from=2026-01-01&to=2026-12-31"
    for name in ("money", "utilisation", "reciprocity"):
        ours = client.get(f"/ui/reports/{name}/csv?{period}")
        api_name = "reciprocity/balances" if name == "reciprocity" else name
        theirs = client.get(f"/reports/{api_name}?{period}&format=csv", headers=world.headers("lead"))
        assert ours.status_code == theirs.status_code == 200
        assert ours.headers["content-type"].startswith("text/csv")
        assert ours.text == theirs.text


def test_bad_input_answers_400_naming_the_field(client: TestClient[Any], world: World) -> None:
    lending = booking_world.build(world)
    csrf = sign_in(client, world.tokens["req"])
    inverted = client.get("/ui/reports?name=caps&from=2026-12-10&to=2026-12-01")
    assert inverted.status_code == 400 and "to" in inverted.text
    booked = client.post(
        f"/ui/resources/{lending.expert}/book",
        data={"csrf": csrf, "start": "2030-01-07T10:00", "minutes": "many",
              "project_id": str(lending.project)},
    )
    assert booked.status_code == 400 and "minutes" in booked.text
    assert client.get("/ui/reports?name=nope").status_code == 404


def test_the_audit_log_filters_and_is_for_auditors_only(client: TestClient[Any], world: World) -> None:
    lending = booking_world.build(world)
    world.user("aud", "A", Role.AUDITOR)
    sign_in(client, world.tokens["aud"])
    everything = client.get("/ui/audit")
    assert everything.status_code == 200 and "agreement.create" in everything.text
    one = client.get(f"/ui/audit?object_id={lending.project}")
    assert "project.create" in one.text and "agreement.create" not in one.text
    client.cookies.clear()
    sign_in(client, world.tokens["req"])
    refused = client.get("/ui/audit")
    assert refused.status_code == 403 and "auditor" in refused.text


def test_a_queued_runs_progress_fragment_asks_to_be_polled(client: TestClient[Any], world: World) -> None:
    booking_world.build(world)
    csrf = sign_in(client, world.tokens["lead"])
    start = datetime.now(UTC).date() + timedelta(days=1)
    world.app.state.jobs.stop()  # no worker takes the run: it stays queued
    with world.session() as s:
        lead = actor_of(s.get(User, world.users["lead"]))
        run = runs.start_run(s, lead, RunCreate(
            horizon_start=datetime.combine(start, time(0), UTC),
            horizon_end=datetime.combine(start + timedelta(days=7), time(0), UTC)))
        run_id = run.id
    fragment = client.get(f"/ui/runs/{run_id}/progress")
    assert f'data-poll="/ui/runs/{run_id}/progress"' in fragment.text
    assert "<html" not in fragment.text  # a fragment, not a page
    applied = client.post(f"/ui/runs/{run_id}/apply", data={"csrf": csrf})
    assert applied.status_code == 409 and "queued" in applied.text


def test_a_free_slot_can_be_asked_for_as_a_request(client: TestClient[Any], world: World) -> None:
    lending = booking_world.build(world)
    csrf = sign_in(client, world.tokens["req"])
    page = client.get(f"/ui/resources/{lending.expert}?at=2030-01-07")
    start = re.search(r'name="start" type="datetime-local" value="([^"]+)"', page.text)
    slot_end = re.search(r'name="slot_end" value="([^"]+)"', page.text)
    assert start and slot_end, "the week of 7 January 2030 has free slots"
    asked = client.post(
        f"/ui/resources/{lending.expert}/book",
        data={"csrf": csrf, "start": start.group(1), "minutes": "60", "as": "request",
              "project_id": str(lending.project), "title": "Soil survey",
              "slot_end": slot_end.group(1)},
        follow_redirects=False,
    )
    assert asked.status_code == 303 and "/ui/runs?requested=" in asked.headers["location"]
    runs_page = client.get(asked.headers["location"])
    assert "Request made" in runs_page.text and "Soil survey" in runs_page.text
    listed = client.get("/bookings", headers=world.headers("req")).json()
    assert listed["items"] == []  # a request, not a booking


def test_the_header_counts_unread_notifications_and_the_inbox_marks_them_read(
    client: TestClient[Any], world: World
) -> None:
    world.user("lead", "A", Role.PROJECT_LEAD)
    with world.session() as s:
        for kind in (kinds.RUN_DONE, kinds.BUDGET_REFUSED):
            emit(s, kind, subject_type="request", subject_id=uuid.uuid4(),
                 unit_ids=[world.unit("A")], data={"title": "Gauge check"})
    csrf = sign_in(client, world.tokens["lead"])
    home = client.get("/ui/")
    assert re.search(r'Inbox <span class="badge">2<span class="sr-only"> unread', home.text)
    inbox = client.get("/ui/notifications")
    assert inbox.text.count("Gauge check") == 2
    assert client.post("/ui/notifications/read-all", data={"csrf": csrf}).status_code == 200
    assert 'class="badge"' not in client.get("/ui/").text


def test_the_borrower_confirms_a_tentative_booking_and_cancels_it_from_the_list(
    client: TestClient[Any], world: World
) -> None:
    lending = booking_world.build(world)
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)  # a Monday, 10:00 in Berlin
    with world.session() as s:
        requester = actor_of(s.get(User, world.users["req"]))
        booking = services.place_booking(
            s, requester, resource=s.get(Resource, lending.expert),
            project=s.get(Project, lending.project), borrower_unit_id=lending.borrower,
            start=start, end=start + timedelta(hours=1), title="Plan placed",
            status=BookingStatus.TENTATIVE,
        )
    csrf = sign_in(client, world.tokens["req"])
    back = "/ui/?view=week&at=2030-01-07"
    assert "Confirm Plan placed on Eva Expert" in client.get(back).text
    confirmed = client.post(f"/ui/bookings/{booking.id}/confirm",
                            data={"csrf": csrf, "back": back}, follow_redirects=False)
    assert confirmed.status_code == 303 and confirmed.headers["location"] == back
    page = client.get(back).text
    assert "Confirm Plan placed" not in page and "status-confirmed" in page
    cancelled = client.post(f"/ui/bookings/{booking.id}/cancel",
                            data={"csrf": csrf, "back": "https://evil.example/"},
                            follow_redirects=False)
    assert cancelled.headers["location"] == "/ui/"  # only back to a dashboard page
    assert "status-cancelled" in client.get(back).text
