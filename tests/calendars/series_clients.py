"""Expand a rendered feed as two real clients do: ical.js (Thunderbird, with its exceptions
related to their series) and Python's recurring-ical-events. Shared by the calendars and the
app's series tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import icalendar
import pytest
import recurring_ical_events

NODE_DIR = Path(__file__).parent / "node"

Occurrence = tuple[str, datetime, datetime, str]
"""(uid, start, end, summary), instants in UTC."""


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def ical_js(body: bytes, until: datetime) -> list[Occurrence]:
    """Every occurrence starting before ``until`` as ical.js expands it, by start."""
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: install Node 20 to run the ical.js client test")
    if not (NODE_DIR / "node_modules" / "ical.js").is_dir():
        pytest.skip("ical.js is not installed: run `npm ci --prefix tests/calendars/node`")
    done = subprocess.run(
        ["node", str(NODE_DIR / "expand_series.mjs"), until.strftime("%Y-%m-%dT%H:%M:%SZ")],
        input=body,
        capture_output=True,
        check=True,
        timeout=60,
    )
    events = json.loads(done.stdout)["events"]
    out = [(e["uid"], _instant(e["start"]), _instant(e["end"]), e["summary"]) for e in events]
    return sorted(out, key=lambda o: (o[1], o[0]))


def recurring(body: bytes, since: datetime, until: datetime) -> list[Occurrence]:
    """Every occurrence in ``[since, until)`` as recurring-ical-events expands it, by start."""
    calendar = icalendar.Calendar.from_ical(body)
    out = [
        (
            str(o["UID"]),
            o.decoded("DTSTART").astimezone(UTC),
            o.decoded("DTEND").astimezone(UTC),
            str(o.get("SUMMARY", "")),
        )
        for o in recurring_ical_events.of(calendar).between(since, until)
    ]
    return sorted(out, key=lambda o: (o[1], o[0]))


def both(body: bytes, since: datetime, until: datetime) -> tuple[list[Occurrence], ...]:
    """What each client shows in ``[since, until)``: (ical.js, recurring-ical-events)."""
    js = [o for o in ical_js(body, until) if o[1] >= since]
    return js, recurring(body, since, until)
