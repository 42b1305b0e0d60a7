"""The in-process worker of ``copool serve``: the embedded default's background jobs.

On SQLite (and on PostgreSQL when ``COPOOL_JOBS_IN_PROCESS`` is set) there is no separate
queue: the run rows are the queue. A thread of the app process claims queued runs (at most
``allocation_processes`` at once, each solved in a child process by ``tasks.run_allocation``),
runs the periodic jobs when due (``periodic_jobs`` decides which process runs a due job),
and takes back runs whose owner died with the same rules as ``copool worker``. At start it
first recovers: a run left running by a process that is gone is queued again (or failed
after its last attempt) before anything else. Stopping hands running runs back to the
queue.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from app.jobs import tasks
from app.jobs.schedule import SCHEDULE
from app.settings import Settings

log = logging.getLogger("copool.jobs")
POLL_S = 1.0
"""How often the worker looks for queued runs when nobody wakes it."""


class LocalWorker:
    """A background thread that runs allocation runs and periodic jobs in this process."""

    def __init__(self, settings: Settings, *, periodic_after_s: float = 60.0) -> None:
        self.settings = settings
        # periodic jobs are first looked at this long after the start (a server that is
        # started and stopped at once, as in tests, neither sweeps nor verifies)
        self.periodic_after_s = periodic_after_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: dict[uuid.UUID, threading.Thread] = {}
        self._next_due: dict[str, float] = {}
        self._rt: tasks.Runtime | None = None

    def start(self) -> None:
        """Start the worker thread (recovery first, then the loop)."""
        self._rt = tasks.Runtime(self.settings)
        first = time.monotonic() + self.periodic_after_s
        self._next_due = {job.name: first for job in SCHEDULE}
        self._thread = threading.Thread(target=self._loop, name="copool-jobs", daemon=True)
        self._thread.start()

    def enqueue(self, run_id: uuid.UUID) -> None:
        """A run was committed as queued: look now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop taking work and hand running runs back to the queue."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for thread in list(self._runs.values()):
            thread.join(timeout=30)
        if self._rt is not None:
            self._rt.close()

    def _loop(self) -> None:
        assert self._rt is not None
        try:
            tasks.recover(self._rt)
        except Exception:
            log.exception("recovering runs at start failed")
        while not self._stopping.is_set():
            try:
                self._periodic(self._rt)
                self._take_runs(self._rt)
            except Exception:  # a database hiccup must not end the worker
                log.exception("in-process worker tick failed")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def _periodic(self, rt: tasks.Runtime) -> None:
        for job in SCHEDULE:
            now = time.monotonic()
            if now < self._next_due.get(job.name, now) or self._stopping.is_set():
                continue
            self._next_due[job.name] = now + job.every.total_seconds()
            if tasks.claim_due(rt, job.name, job.every):
                try:
                    tasks.run_periodic(rt, job.name, job.body, started=True)
                except Exception:
                    continue  # recorded in periodic_jobs; the next one runs on time
                if job.name == "recover_runs":
                    self._wake.set()

    def _take_runs(self, rt: tasks.Runtime) -> None:
        self._runs = {k: t for k, t in self._runs.items() if t.is_alive()}
        free = self.settings.allocation_processes - len(self._runs)
        if free <= 0:
            return
        for run_id in tasks.queued_runs(rt):
            if free <= 0 or self._stopping.is_set():
                return
            if run_id in self._runs:
                continue
            thread = threading.Thread(
                target=self._solve, args=(rt, run_id), name=f"copool-run-{run_id}", daemon=True
            )
            self._runs[run_id] = thread
            thread.start()
            free -= 1

    def _solve(self, rt: tasks.Runtime, run_id: uuid.UUID) -> None:
        try:
            tasks.run_allocation(rt, run_id, self._stopping.is_set)
        except Exception:
            log.exception("allocation run %s: the worker failed", run_id)
        finally:
            self._wake.set()
