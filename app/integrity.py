"""What an integrity check found: the rows at fault and a one-line summary.

``app.funds.verify.verify_ledger`` and ``app.audit.chain.verify_audit`` return a ``Report``;
``copool ledger verify`` / ``copool audit verify`` print it (exit 1 naming the first bad
row), and a periodic job can keep it for admins to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

MAX_FINDINGS = 50
"""A check stops collecting after this many findings (the first one is what matters)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One bad row: its table, its id, and what is wrong with it."""

    table: str
    row_id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.table} {self.row_id}: {self.problem}"


@dataclass(slots=True)
class Report:
    """The outcome of one integrity check: counts of what was checked and every finding."""

    check: str
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether nothing was found."""
        return not self.findings

    def add(self, table: str, row_id: object, problem: str) -> None:
        """Record a bad row (the first ``MAX_FINDINGS`` are kept)."""
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(table, str(row_id), problem))

    def summary(self) -> str:
        """One line: ok with the counts, or the number of findings and the first bad row."""
        counts = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        note = f"; {self.note}" if self.note else ""
        if self.ok:
            return f"{self.check} verify: ok ({counts}{note})"
        more = "+" if len(self.findings) >= MAX_FINDINGS else ""
        return (
            f"{self.check} verify: {len(self.findings)}{more} problem(s); first: "
            f"{self.findings[0]} ({counts}{note})"
        )


def check_triggers(
    session: Session, report: Report, expected: Mapping[str, tuple[str, ...]]
) -> None:
    """Report each expected trigger (by engine) that is missing or disabled."""
    bind = session.get_bind()
    names = expected.get(bind.dialect.name, ())
    if bind.dialect.name == "postgresql":
        rows = session.execute(
            text("SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal")
        ).all()
        state = {r.tgname: r.tgenabled for r in rows}
    else:
        rows = session.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()
        state = {r.name: "O" for r in rows}
    for name in names:
        if name not in state:
            report.add("trigger", name, "is missing (dropped)")
        elif state[name] != "O":
            report.add("trigger", name, "is disabled")
