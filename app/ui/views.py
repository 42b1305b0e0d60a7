"""What pages show, computed from service answers: timelines, charts, names.

Pure layout (positions in a 0..1000 wide strip, chart points) plus one read of display
names for ids the services already returned to this actor. No rule lives here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.catalog.models import Resource
from app.projects.models import Project
from app.units.models import Unit

WIDTH = 1000.0
"""Width of a timeline strip or chart in SVG user units."""


@dataclass(frozen=True, slots=True)
class Window:
    """The period a timeline shows, ``[start, end)`` in UTC, by whole days."""

    start: datetime
    end: datetime
    view: str

    @property
    def days(self) -> list[date]:
        """Each day of the window."""
        n = (self.end - self.start).days
        return [(self.start + timedelta(days=i)).date() for i in range(n)]

    def x(self, instant: datetime) -> float:
        """Where ``instant`` falls on a strip (clamped to the window)."""
        span = (self.end - self.start).total_seconds()
        offset = (min(max(instant, self.start), self.end) - self.start).total_seconds()
        return round(WIDTH * offset / span, 2)

    def shifted(self, steps: int) -> date:
        """The first day of the window ``steps`` windows later (earlier when negative)."""
        if self.view == "month":
            month = self.start.month - 1 + steps
            return date(self.start.year + month // 12, month % 12 + 1, 1)
        return (self.start + timedelta(days=7 * steps)).date()


def window(view: str, at: date | None) -> Window:
    """The week (from Monday) or month holding ``at`` (today when None)."""
    day = at or datetime.now(UTC).date()
    if view == "month":
        first = day.replace(day=1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        view = "week"
        first = day - timedelta(days=day.weekday())
        nxt = first + timedelta(days=7)
    return Window(_midnight(first), _midnight(nxt), view)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Bar:
    """One interval on a strip: position, width, a CSS class, and what it is."""

    x: float
    width: float
    css: str
    label: str


@dataclass
class Row:
    """One labelled strip of a timeline."""

    label: str
    href: str = ""
    bars: list[Bar] = field(default_factory=list)


def bar(win: Window, start: datetime, end: datetime, css: str, label: str) -> Bar:
    """A bar for ``[start, end)``, at least a hair wide so a short booking stays visible."""
    x0, x1 = win.x(start), win.x(end)
    return Bar(x=x0, width=max(x1 - x0, 1.5), css=css, label=label)


def rows_by(
    win: Window, items: Iterable[tuple[str, str, datetime, datetime, str, str]], most: int = 40
) -> list[Row]:
    """Rows of a timeline from ``(row label, row href, start, end, css, label)``, by label:
    the first ``most`` labels, then one row saying how many more were left out."""
    rows: dict[str, Row] = {}
    for label, href, start, end, css, text in items:
        row = rows.setdefault(label, Row(label=label, href=href))
        row.bars.append(bar(win, start, end, css, text))
    labels = sorted(rows)
    shown = [rows[k] for k in labels[:most]]
    if len(labels) > most:
        shown.append(Row(label=f"… {len(labels) - most} more resources (see the list)"))
    return shown


def names(
    session: Session, model: type[Resource | Project | Unit | User], ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Display names of objects whose ids a service already returned to the actor."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    label = model.code if model is Project else model.name
    rows = session.execute(select(model.id, label).where(model.id.in_(wanted))).all()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True, slots=True)
class Chart:
    """A line chart in a ``WIDTH`` × ``HEIGHT`` box: a polyline, its axis labels."""

    points: str
    y_labels: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    zero_y: float


HEIGHT = 300.0
PAD = 40.0


def step_chart(series: Sequence[tuple[datetime, int]], fmt: str = "{:,.2f}", scale: int = 100) -> Chart | None:
    """A step line of a balance over time (minor units, shown divided by ``scale``)."""
    if not series:
        return None
    t0, t1 = series[0][0], series[-1][0]
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [v for _, v in series]
    low, high = min(0, *values), max(0, *values)
    rng = max(high - low, 1)

    def sx(t: datetime) -> float:
        return round(PAD + (WIDTH - 2 * PAD) * (t - t0).total_seconds() / span, 1)

    def sy(v: int) -> float:
        return round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v - low) / rng, 1)

    pts: list[str] = []
    previous: int | None = None
    for t, v in series:
        if previous is not None:
            pts.append(f"{sx(t)},{sy(previous)}")
        pts.append(f"{sx(t)},{sy(v)}")
        previous = v
    ys = [(sy(v), fmt.format(v / scale)) for v in sorted({low, high, 0})]
    xs = [(sx(t0), t0.date().isoformat()), (sx(t1), t1.date().isoformat())]
    return Chart(points=" ".join(pts), y_labels=ys, x_labels=xs, zero_y=sy(0))


@dataclass(frozen=True, slots=True)
class BarItem:
    """One bar of a bar chart: its label, value text and length in SVG units."""

    label: str
    value: str
    length: float
    y: float


def bar_chart(items: Sequence[tuple[str, float]], fmt: str = "{:,.1f}") -> list[BarItem]:
    """Horizontal bars for ``(label, value)`` pairs, scaled to the largest value."""
    top = max((abs(v) for _, v in items), default=0.0) or 1.0
    return [
        BarItem(label=label, value=fmt.format(v), length=round(600 * abs(v) / top, 1), y=i * 26.0)
        for i, (label, v) in enumerate(items)
    ]
