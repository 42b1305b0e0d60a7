"""The directory prometheus-client's multiprocess mode shares between uvicorn workers.

``copool serve`` calls ``prepare`` before uvicorn starts its workers (they inherit the
environment, and prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is first
imported). An operator's ``PROMETHEUS_MULTIPROC_DIR`` is used and emptied of the previous
start's ``*.db`` files (a dead worker's counters must not count twice, and its gauges must not
linger); without one, a fresh temporary directory is made and removed when ``serve`` exits.
This module must not import prometheus_client: it runs before the variable is set.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> Path:
    """Make (or empty) the shared metrics directory and export it; returns it."""
    given = os.environ.get(ENV, "")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="copool-metrics-"))
        atexit.register(shutil.rmtree, path, True)
    os.environ[ENV] = str(path)
    return path


def enabled() -> bool:
    """Whether this process writes its metrics to the shared directory."""
    return bool(os.environ.get(ENV))
