"""Prometheus metrics of the service, served at ``/metrics``.

Per request (``observe.ObservedRequests``, no database work): ``copool_http_requests_total``
by method, route template and status (503 and 429 included, also the admission gate's,
whose route is ``(none)``: they are refused before routing), ``copool_http_request_seconds``
by method and route template, ``copool_http_requests_in_flight``. The database pool:
``copool_db_connections_in_use`` (SQLAlchemy's checkout and checkin events) and
``copool_db_pool_capacity``. These live in each process; under ``copool serve`` every
uvicorn worker writes them to ``PROMETHEUS_MULTIPROC_DIR`` (``app.ops.multiproc``) and a
scrape of any worker sums them all.

Read from the database when scraped (the same for every worker, so never summed):
``copool_allocation_runs`` queued and running, ``copool_allocation_oldest_queued_seconds``,
``copool_allocation_runs_finished_last_hour`` by status and
``copool_allocation_solve_seconds_last_hour`` (mean, p90, max of started → finished),
``copool_jobs_waiting`` per procrastinate queue (PostgreSQL), ``copool_database_up``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, func, select, text

from app.admission import pool_capacity
from app.allocation.models import ACTIVE_STATUSES, AllocationRun, RunStatus
from app.base import utcnow
from app.db import make_session_factory, read_only_engine, session_scope
from app.ops import multiproc

log = logging.getLogger("copool.ops")

CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
NO_ROUTE = "(none)"
"""The route label of a request that matched no route (404, or refused before routing)."""
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The metrics of one app (a registry of its own, so tests' apps do not share counts)."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "copool_http_requests", "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"], registry=reg,
        )
        self.latency = Histogram(
            "copool_http_request_seconds", "Time to answer a request, by method and route template",
            ["method", "route"], buckets=BUCKETS, registry=reg,
        )
        self.in_flight = Gauge(
            "copool_http_requests_in_flight", "Requests being answered now",
            multiprocess_mode="livesum", registry=reg,
        )
        self.db_in_use = Gauge(
            "copool_db_connections_in_use", "Database connections checked out of the pools",
            multiprocess_mode="livesum", registry=reg,
        )
        self.db_capacity = Gauge(
            "copool_db_pool_capacity", "Connections the pools may hand out (pool + overflow)",
            multiprocess_mode="livesum", registry=reg,
        )
        self.database = DatabaseCollector(engine)
        # shared only if prometheus_client was first imported with the directory set
        self.shared = multiproc.enabled() and values.ValueClass is not values.MutexValue
        if multiproc.enabled() and not self.shared:
            log.warning("PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was "
                        "imported: /metrics shows this worker only")
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._watch_pool(engine)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one answered request."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            method = method if method in METHODS else "OTHER"
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _watch_pool(self, engine: Engine) -> None:
        self.db_capacity.set(pool_capacity(engine))
        event.listen(engine, "checkout", lambda *_: self.db_in_use.inc())
        event.listen(engine, "checkin", lambda *_: self.db_in_use.dec())

    def render(self) -> bytes:
        """The exposition: every worker's metrics (multiprocess mode) or this app's, and
        the database's."""
        if self.shared:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
        registry.register(self.database)
        return generate_latest(registry)

    def close(self) -> None:
        """At shutdown: this worker's live gauges leave the shared directory."""
        if self.shared:
            import os

            multiprocess.mark_process_dead(os.getpid())


class _Forward(Collector):
    """Another registry's metrics, so that the database collector joins them per scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


class DatabaseCollector(Collector):
    """Metrics read from the database when scraped: the run queue, solve times, the job
    queue; ``copool_database_up`` 0 (and nothing else) when the database cannot answer."""

    def __init__(self, engine: Engine) -> None:
        self.factory = make_session_factory(read_only_engine(engine))
        self.postgres = engine.dialect.name == "postgresql"

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("copool_database_up", "Whether the database answered the scrape")
        try:
            with session_scope(self.factory) as session:
                families = list(self._families(session))
        except Exception:
            log.exception("metrics: the database did not answer")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, session: Any) -> Iterator[Metric]:
        counts = dict(
            session.execute(
                select(AllocationRun.status, func.count())
                .where(AllocationRun.status.in_(ACTIVE_STATUSES))
                .group_by(AllocationRun.status)
            ).all()
        )
        runs = GaugeMetricFamily(
            "copool_allocation_runs", "Allocation runs queued or running", labels=["status"]
        )
        for status in ACTIVE_STATUSES:
            runs.add_metric([status], counts.get(status, 0))
        yield runs
        now = utcnow()
        oldest = session.scalar(
            select(func.min(AllocationRun.created_at)).where(
                AllocationRun.status == RunStatus.QUEUED.value
            )
        )
        yield GaugeMetricFamily(
            "copool_allocation_oldest_queued_seconds",
            "Age of the oldest queued allocation run (0: none queued)",
            value=(now - oldest).total_seconds() if oldest is not None else 0.0,
        )
        yield from _finished(session, now)
        if self.postgres:
            yield _jobs_waiting(session)


def _finished(session: Any, now: Any) -> Iterator[Metric]:
    rows = session.execute(
        select(AllocationRun.status, AllocationRun.started_at, AllocationRun.finished_at).where(
            AllocationRun.status.in_([RunStatus.DONE.value, RunStatus.FAILED.value]),
            AllocationRun.finished_at >= now - timedelta(hours=1),
        )
    ).all()
    finished = GaugeMetricFamily(
        "copool_allocation_runs_finished_last_hour",
        "Allocation runs that ended in the last hour, by status",
        labels=["status"],
    )
    for status in (RunStatus.DONE.value, RunStatus.FAILED.value):
        finished.add_metric([status], sum(1 for r in rows if r.status == status))
    yield finished
    took = sorted(
        (r.finished_at - r.started_at).total_seconds()
        for r in rows
        if r.status == RunStatus.DONE.value and r.started_at is not None
    )
    solve = GaugeMetricFamily(
        "copool_allocation_solve_seconds_last_hour",
        "Seconds from a worker taking a run to its plan, over runs done in the last hour",
        labels=["stat"],
    )
    if took:
        solve.add_metric(["mean"], sum(took) / len(took))
        solve.add_metric(["p90"], took[min(len(took) - 1, math.ceil(0.9 * len(took)) - 1)])
        solve.add_metric(["max"], took[-1])
    yield solve


def _jobs_waiting(session: Any) -> Metric:
    waiting = GaugeMetricFamily(
        "copool_jobs_waiting", "procrastinate jobs waiting for a worker, by queue",
        labels=["queue"],
    )
    rows = session.execute(
        text(
            "SELECT queue_name, count(*) FROM procrastinate_jobs "
            "WHERE status = 'todo' GROUP BY queue_name"
        )
    ).all()
    for queue, count in rows:
        waiting.add_metric([queue], count)
    return waiting
