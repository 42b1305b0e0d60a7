"""A live copool server for race tests: uvicorn in a subprocess, and threads released together.

``live_server`` serves the app on the test database (one or more worker processes) on a
free port; ``together`` runs one piece of work per thread, all released at once by a
``threading.Barrier``, each thread with its own HTTP client (its own connection).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(db_url: str, workers: int, log: Path) -> Iterator[str]:
    """Serve the app with uvicorn on a free port; yields the base URL, kills it after.

    The server's stderr goes to ``log``; its tail is shown when the block fails.
    """
    with live_server_process(db_url, workers, log) as (base, _proc):
        yield base


@contextmanager
def live_server_process(
    db_url: str, workers: int, log: Path, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`live_server`, also yielding the server's process (the leader of its group)."""
    port = port or _free_port()
    env = {**os.environ, "COPOOL_DATABASE_URL": db_url, "COPOOL_LOG_LEVEL": "WARNING"}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app.main:app_factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base, workers, log)
        yield base, proc
    except BaseException:
        sys.stderr.write(f"--- uvicorn log ---\n{log.read_text(errors='replace')[-6000:]}\n")
        raise
    finally:
        _stop(proc)


def _wait_until_up(proc: subprocess.Popen[bytes], base: str, workers: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                if workers > 1:
                    time.sleep(1.0)  # let every worker import the app and start accepting
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("uvicorn did not answer /health within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started (uvicorn + its workers)
            proc.wait(timeout=5)


def together(
    n: int, work: Callable[[int, httpx.Client], Any], clients: list[httpx.Client]
) -> list[Any]:
    """Run ``work(i, client)`` in ``n`` threads released at once by a barrier."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i, clients[i])
        except Exception as exc:  # a transport error is an answer the test must see
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
