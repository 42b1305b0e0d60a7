"""The shape every report answers with: named columns and rows of plain values."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from pydantic import BaseModel


class Report(BaseModel):
    """One report: its name, the filters it ran with, its columns and its rows.

    Every row is a dict keyed by ``columns``; CSV writes the same columns in the same order.
    """

    name: str
    period_from: date | None = None
    period_to: date | None = None
    columns: list[str]
    rows: list[dict[str, Any]]

    def to_csv(self) -> str:
        """The rows as CSV with a header line of ``columns`` (empty cells for null)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if row[c] is None else row[c] for c in self.columns])
        return out.getvalue()
