"""API shapes of the funds routes (statements are the ledger's own dataclasses)."""

from __future__ import annotations

import uuid

from pydantic import Field

from app.schemas import MinorUnits, Schema, Text

Positive = MinorUnits


class PledgeCreate(Schema):
    """A unit promises money; unconditional pledges become receivables at once."""

    unit_id: uuid.UUID
    amount: Positive = Field(gt=0)
    conditional: bool = False
    condition: Text = ""
    memo: Text = ""


class ReceiptCreate(Schema):
    """Money received against a pledge (partial receipts are fine)."""

    amount: Positive = Field(gt=0)
    memo: Text = ""


class ContributionCreate(Schema):
    """Money (or, with ``in_kind``, the value of goods or services) a unit puts in directly."""

    unit_id: uuid.UUID
    amount: Positive = Field(gt=0)
    in_kind: bool = False
    memo: Text = ""


class RefundCreate(Schema):
    """Money paid back to a contributing unit from the project's free cash."""

    unit_id: uuid.UUID
    amount: Positive = Field(gt=0)
    memo: Text = ""


class ExpenseLine(Schema):
    """One spending line: a category (e.g. ``travel``) and an amount."""

    category: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    amount: Positive = Field(gt=0)


class ExpenseCreate(Schema):
    """Spending from the project's cash, by category."""

    lines: list[ExpenseLine] = Field(min_length=1, max_length=50)
    memo: Text = ""


class TransferCreate(Schema):
    """Move free cash to another project (admins; audited)."""

    to_project_id: uuid.UUID
    amount: Positive = Field(gt=0)
    reason: str = Field(min_length=1, max_length=2000)


class ReversalCreate(Schema):
    """Why an entry is reversed."""

    reason: str = Field(min_length=1, max_length=2000)


class EntryRef(Schema):
    """What a posting call wrote."""

    entry_id: int
    kind: str
    project_id: uuid.UUID


class PledgeRef(Schema):
    """A recorded pledge."""

    pledge_id: int
    project_id: uuid.UUID
    unit_id: uuid.UUID
    amount: int
    """In minor units of ``currency``."""
    currency: str
    conditional: bool
