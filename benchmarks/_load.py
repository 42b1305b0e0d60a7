"""A small HTTP/1.1 load generator for the benchmarks: keep-alive connections on asyncio.

Requests are encoded to bytes before the clock starts, each connection sends one request,
reads the whole answer (status line, headers, ``Content-Length`` or chunked body), and
takes the next; nothing is parsed beyond the status and ``Retry-After``. A 503 with
``Retry-After`` (the server shedding load) is what a polite client gets: the connection
waits that long and sends the same request again; its latency runs from the first send
to the final answer, and the sheds are counted (``shed``). The generator's own CPU time is
measured over the run (``gen_cpu``: CPU seconds per wall second, 1.0 = one core busy),
so a saturated generator shows in the figures instead of hiding in them.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

try:  # the same fast loop uvicorn uses, when installed
    import uvloop

    _loop_factory: Any = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    _loop_factory = None


def encode(method: str, path: str, host: str, headers: dict[str, str] | None = None,
           body: Any = None, params: dict[str, Any] | None = None) -> bytes:
    """One HTTP/1.1 request as bytes (JSON body when ``body`` is given)."""
    if params:
        path = f"{path}?{urlencode(params)}"
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    payload = b""
    if body is not None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        lines += ["content-type: application/json", f"content-length: {len(payload)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class Run:
    """What one run measured."""

    requests: int
    wall_s: float
    gen_cpu: float
    """The generator's CPU seconds per wall second (1.0 = one core)."""
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    first_body: bytes = b""
    shed: int = 0
    """503 answers with Retry-After: waited out and sent again, or, when the wait would
    pass the run's end, the connection's last (not counted among ``requests``)."""

    @property
    def rps(self) -> float:
        """Final answers per second."""
        return self.requests / self.wall_s

    def per_second(self, status: int) -> float:
        """Final answers of ``status`` per second (201: bookings made per second)."""
        return self.statuses.get(status, 0) / self.wall_s


def _retry_after(lower: bytes) -> float | None:
    at = lower.find(b"\r\nretry-after:")
    if at < 0:
        return None
    end = lower.index(b"\r\n", at + 2)
    try:
        return float(lower[at + 14:end].strip())
    except ValueError:
        return None


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One answer: status, body, and whether the server closes the connection."""
    status, body, close, _ = await _read_answer_and_wait(reader)
    return status, body, close


async def _read_answer_and_wait(reader: asyncio.StreamReader
                                ) -> tuple[int, bytes, bool, float | None]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    wait = _retry_after(lower) if status == 503 else None
    close = b"\r\nconnection: close" in lower
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        body = await reader.readexactly(int(lower[at + 17:end]))
    elif b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(chunk[:-2])
        body = b"".join(parts)
    else:
        body = await reader.read()
        close = True
    return status, body, close, wait


async def _run(host: str, port: int, requests: list[bytes], connections: int,
               duration_s: float | None) -> Run:
    cursor = iter(range(len(requests)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    first: list[bytes] = []
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]

    shed = [0]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in cursor:
            t0 = time.perf_counter()
            if t0 > deadline:
                break
            while True:
                try:
                    writer.write(requests[i])
                    status, body, close, wait = await _read_answer_and_wait(reader)
                except (OSError, asyncio.IncompleteReadError):
                    status, body, close, wait = 0, b"", True, None
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                if wait is None:
                    break
                shed[0] += 1
                if time.perf_counter() + wait > deadline:
                    writer.close()  # a client told to wait past the run's end stops here
                    return
                await asyncio.sleep(wait)
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if i == 0:
                first.append(body)
        writer.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + duration_s if duration_s else float("inf")
    await asyncio.gather(*(worker(r, w) for r, w in streams))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Run(len(latencies), wall, cpu / wall, latencies, statuses,
               first[0] if first else b"", shed[0])


def run(base: str, requests: list[bytes], connections: int,
        duration_s: float | None = None) -> Run:
    """Send the requests in order over ``connections`` keep-alive connections to ``base``
    (``http://host:port``): all of them, or those started within ``duration_s``.
    Connections are open before the clock starts."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with asyncio.Runner(loop_factory=_loop_factory) as runner:
        return runner.run(_run(host, int(port), requests, min(connections, len(requests)),
                               duration_s))


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]
