"""Where ``copool serve`` sends committed runs: its in-process worker, or procrastinate."""

from __future__ import annotations

import uuid
from typing import Protocol

from app.settings import Settings


class JobQueue(Protocol):
    """What the app needs of background work: start, stop, and a run to solve."""

    def start(self) -> None:
        """Begin (the in-process worker starts its thread)."""

    def stop(self) -> None:
        """End (the in-process worker hands its running runs back)."""

    def enqueue(self, run_id: uuid.UUID) -> None:
        """A committed queued run: make sure a worker will solve it."""


def job_queue(settings: Settings) -> JobQueue:
    """The in-process worker on SQLite (or when asked), else procrastinate's queue."""
    if settings.runs_jobs_in_process:
        from app.jobs.local import LocalWorker

        return LocalWorker(settings)
    from app.jobs.queue import ProcrastinateQueue

    return ProcrastinateQueue(settings)
