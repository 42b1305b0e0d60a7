"""Background jobs in process, on SQLite and PostgreSQL: cancel, recovery rules, the periodic
sweep, the admins' job report (issue 13). Workers as separate processes: test_jobs_worker.py.
"""

from __future__ import annotations

import multiprocessing
import socket
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.allocation import services as runs
from app.allocation.models import AllocationRun, RunStatus
from app.auth.models import Role
from app.base import utcnow
from app.bookings.models import Booking, Request
from app.jobs import tasks
from app.jobs.identity import this_owner
from app.jobs.local import LocalWorker
from app.jobs.models import PeriodicJob
from tests.app.booking_world import build
from tests.app.test_bookings import MON, slot
from tests.app.test_jobs_worker import busy_world, run_row, solving, start_run, wait_for


@pytest.fixture
def settings(settings):
    """The app's in-process worker solves runs on both engines."""
    return settings.model_copy(update={"jobs_in_process": True})


def _solver_child(run_id: str) -> multiprocessing.process.BaseProcess:
    name = f"copool-solve-{run_id[:8]}"
    return wait_for(
        lambda: next((p for p in multiprocessing.active_children() if p.name == name), None),
        "the solver child",
    )


@pytest.mark.slow
def test_cancel_stops_a_running_solve_and_frees_the_quota(client, world, app):
    lead = busy_world(client, world)
    first = start_run(client, lead, time_limit=120)
    wait_for(lambda: solving(app, first), "the solve to be under way")
    child = _solver_child(first)
    waiting = [start_run(client, lead, time_limit=1) for _ in range(3)]  # queued behind it
    refused = client.post("/allocation-runs", json={"horizon_start": "2027-03-01T00:00:00Z",
                          "horizon_end": "2027-03-02T00:00:00Z"}, headers=lead)
    assert refused.status_code == 409 and refused.json()["code"] == "too_many_runs"
    requester = world.headers("req")
    assert client.post(f"/allocation-runs/{first}/cancel", headers=requester).status_code == 403

    cancelled = client.post(f"/allocation-runs/{first}/cancel", headers=lead)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    wait_for(lambda: not child.is_alive(), "the cancelled solve's process to end", timeout=30)
    assert run_row(app, first).status == "cancelled"  # the dying child wrote nothing over it
    assert start_run(client, lead, time_limit=1)  # the quota has room again
    again = client.post(f"/allocation-runs/{first}/cancel", headers=lead)
    assert again.status_code == 409 and again.json()["code"] == "wrong_status"
    for run_id in waiting:  # queued runs are cancelled before any worker takes them
        client.post(f"/allocation-runs/{run_id}/cancel", headers=lead)


def _running(world, w, **columns) -> uuid.UUID:
    with world.session() as s:
        run = AllocationRun(
            created_by=world.users["lead"], unit_id=w.borrower, status=RunStatus.RUNNING.value,
            horizon_start=utcnow(), horizon_end=utcnow() + timedelta(days=1), slot_minutes=15,
            time_limit_s=10, project_ids=[], unit_ids=[], emergency=False, **columns)
        s.add(run)
        s.flush()
        return run.id


def test_recovery_takes_back_only_runs_whose_worker_died(world, app):
    w = build(world)
    now = utcnow()
    recovery = runs.Recovery(stale=timedelta(seconds=30), max_attempts=3)
    silent = _running(world, w, owner="far:1:aaaa", heartbeat_at=now - timedelta(minutes=2),
                      attempts=1)
    gone = _running(world, w, owner=f"{socket.gethostname()}:999999999:bbbb",
                    heartbeat_at=now, attempts=2)  # a process of this host that is gone
    last = _running(world, w, owner="far:2:cccc", heartbeat_at=now - timedelta(hours=1),
                    attempts=3)
    alive = _running(world, w, owner="far:3:dddd", heartbeat_at=now, attempts=1)
    mine = _running(world, w, owner=this_owner(), heartbeat_at=now, attempts=1)
    with world.session() as s:
        requeued = runs.recover_runs(s, recovery)
    assert sorted(requeued) == sorted([silent, gone])
    with world.session() as s:
        state = {r.id: r for r in s.scalars(select(AllocationRun))}
    assert [state[i].status for i in (silent, gone, last, alive, mine)] == [
        "queued", "queued", "failed", "running", "running"]
    assert state[silent].owner == "" and state[silent].heartbeat_at is None
    assert "retrying: worker far:1:aaaa stopped answering" in state[silent].progress["note"]
    assert state[last].error.startswith("gave up after 3 attempts: worker far:2:cccc")


def _no_show_and_a_lapsed_request(client, world, w) -> tuple[str, str]:
    """A confirmed device booking that started 2 h ago without check-in, and an open request
    whose window has passed (both moved into the past in the database)."""
    booked = client.post("/bookings", json={"resource_id": str(w.device), "project_id": str(
        w.project), **slot(MON, "10:00", "12:00")}, headers=w.requester)
    assert booked.status_code == 201 and booked.json()["status"] == "confirmed", booked.text
    asked = client.post("/requests", json={
        "project_id": str(w.project), "title": "late", "duration_minutes": 60, "priority": 3,
        "window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z",
        "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 1}]},
        headers=w.requester)
    assert asked.status_code == 201, asked.text
    now = utcnow()
    with world.session() as s:
        booking = s.get(Booking, uuid.UUID(booked.json()["id"]))
        shift = now - timedelta(hours=1) - booking.start  # keeps its setup and teardown
        for column in ("start", "end", "block_start", "block_end"):
            setattr(booking, column, getattr(booking, column) + shift)
        s.execute(update(Request).where(Request.id == uuid.UUID(asked.json()["id"])).values(
            window_start=now - timedelta(days=2), window_end=now - timedelta(days=1)))
    return booked.json()["id"], asked.json()["id"]


def test_the_in_process_worker_sweeps_without_a_command_and_admins_see_it(world, app, settings):
    from litestar.testing import TestClient

    w = build(world)
    admin = world.user("boss", "B", Role.ADMIN)
    with TestClient(app=app) as client:
        booking_id, request_id = _no_show_and_a_lapsed_request(client, world, w)
        assert client.get("/admin/jobs", headers=w.requester).status_code == 403
    worker = LocalWorker(settings, periodic_after_s=0)  # what `copool serve` starts
    worker.start()
    try:
        def swept() -> bool:
            with world.session() as s:
                booking = s.get(Booking, uuid.UUID(booking_id))
                request = s.get(Request, uuid.UUID(request_id))
                return booking.status == "released" and request.status == "expired"

        wait_for(swept, "the periodic sweep")
        wait_for(lambda: _job(world, "sweep").last_status == "ok", "the sweep's result")
    finally:
        worker.stop()
    with TestClient(app=app) as client:
        report = client.get("/admin/jobs", headers=admin)
    assert report.status_code == 200, report.text
    jobs = {job["name"]: job for job in report.json()["periodic"]}
    assert set(jobs) >= {"sweep", "purge_idempotency", "recover_runs"}
    assert jobs["sweep"]["last_status"] == "ok" and jobs["sweep"]["runs"] >= 1
    assert jobs["sweep"]["every_seconds"] == 60
    assert report.json()["allocation_runs"]["running"] == 0


def _job(world, name: str) -> PeriodicJob:
    with world.session() as s:
        row = s.scalar(select(PeriodicJob).where(PeriodicJob.name == name))
        return row if row is not None else PeriodicJob(name=name, last_status="never")


def test_a_failing_periodic_job_records_its_error(world, app, settings):
    rt = tasks.Runtime(settings)

    def broken(_rt: tasks.Runtime) -> dict[str, int]:
        raise RuntimeError("the ledger is on fire")

    try:
        with pytest.raises(RuntimeError):
            tasks.run_periodic(rt, "sweep", broken)
        assert tasks.run_periodic(rt, "purge_idempotency", tasks.purge_idempotency) == {"purged": 0}
    finally:
        rt.close()
    failed = _job(world, "sweep")
    assert failed.last_status == "failed" and "the ledger is on fire" in failed.last_error
    assert _job(world, "purge_idempotency").last_result == {"purged": 0}


def test_the_daily_integrity_checks_run_as_jobs(client, world, app, settings):
    w = build(world)
    booked = client.post("/bookings", json={"resource_id": str(w.expert), "project_id": str(
        w.project), **slot(MON, "10:00", "12:00")}, headers=w.requester)
    assert booked.status_code == 201, booked.text  # a hold on the project's cash, audited
    rt = tasks.Runtime(settings)
    try:
        ledger_ok = tasks.run_periodic(rt, "ledger_verify", tasks.verify_ledger)
        audit_ok = tasks.run_periodic(rt, "audit_verify", tasks.verify_audit)
    finally:
        rt.close()
    assert ledger_ok is not None and ledger_ok["ok"] and "ledger verify: ok" in ledger_ok["summary"]
    assert audit_ok is not None and audit_ok["counts"]["events"] >= 1
    assert _job(world, "audit_verify").last_status == "ok"
