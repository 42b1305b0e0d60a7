"""Co-funding of joint projects through the ledger, with the rules of who may do what.

Reading a project's ledger: admins, auditors, the project's members, and the unit
managers of its participating units. Writing:
- pledges, direct and in-kind contributions, refunds for unit U: U's unit_manager;
- receipts against pledges, marking a conditional pledge met, expenses, reversals: the
  project lead or the lead unit's unit_manager;
- transfers between projects: admins only;
admins may do everything. Every write is also written to the audit log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import ledger
from app.audit.services import record
from app.auth.actor import Actor
from app.auth.models import Role
from app.errors import InvalidInput, NotFound, PermissionDenied
from app.funds import schemas
from app.projects.models import Project, ProjectMember
from app.projects.services import get_project
from ledger.models import Entry, Pledge


class _Ref:
    """An audit-log handle for a ledger row (entries and pledges have integer ids)."""

    def __init__(self, ident: int | uuid.UUID) -> None:
        self.id = ident


def _is_member(session: Session, actor: Actor, project: Project) -> bool:
    return (
        session.scalar(
            select(ProjectMember.id).where(
                ProjectMember.project_id == project.id, ProjectMember.user_id == actor.user_id
            )
        )
        is not None
    )


def readable_project(session: Session, actor: Actor, project_id: uuid.UUID) -> Project:
    """A project whose ledger the actor may read (403 for other participants)."""
    project = get_project(session, actor, project_id)
    units = {s.unit_id for s in project.shares}
    if (
        actor.sees_everything
        or _is_member(session, actor, project)
        or any(actor.manages_unit(u, Role.UNIT_MANAGER) for u in units)
    ):
        return project
    raise PermissionDenied(
        "a project's ledger is for its members, its units' managers and auditors"
    )


def _lead(actor: Actor, project: Project) -> None:
    if not (
        actor.user_id == project.lead_user_id
        or actor.manages_unit(project.lead_unit_id, Role.UNIT_MANAGER)
    ):
        raise PermissionDenied("this needs the project lead or the lead unit's manager")


def _unit_manager(actor: Actor, project: Project, unit_id: uuid.UUID) -> None:
    if unit_id not in {s.unit_id for s in project.shares}:
        raise InvalidInput("unit_id: the unit takes no part in the project", field="unit_id")
    if not actor.manages_unit(unit_id, Role.UNIT_MANAGER):
        raise PermissionDenied("only that unit's unit_manager commits its money")


def _money(project: Project, amount: int) -> ledger.Money:
    return ledger.Money(amount, project.currency)


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    project: Project,
    ident: int,
    detail: dict[str, Any],
    reason: str = "",
) -> None:
    record(
        session,
        actor,
        action,
        _Ref(ident),
        unit_id=project.lead_unit_id,
        after={"project_id": str(project.id), **detail},
        reason=reason,
        object_type="ledger_entries" if not action.startswith("funds.pledge") else "pledges",
    )


def _entry_ref(entry: Entry, project: Project) -> schemas.EntryRef:
    return schemas.EntryRef(entry_id=entry.id, kind=entry.kind, project_id=project.id)


def _writable(session: Session, actor: Actor, project_id: uuid.UUID) -> Project:
    project = get_project(session, actor, project_id)
    ledger.open_ledger(session, project.id, project.currency)
    return project


def pledge(
    session: Session, actor: Actor, project_id: uuid.UUID, data: schemas.PledgeCreate, key: str
) -> schemas.PledgeRef:
    """A unit pledges money to the project."""
    project = _writable(session, actor, project_id)
    _unit_manager(actor, project, data.unit_id)
    made = ledger.pledge(
        session,
        project.id,
        data.unit_id,
        _money(project, data.amount),
        key=key,
        conditional=data.conditional,
        condition=data.condition,
        memo=data.memo,
        actor_id=actor.user_id,
    )
    _audit(session, actor, "funds.pledge", project, made.id, data.model_dump(mode="json"))
    return schemas.PledgeRef(
        pledge_id=made.id,
        project_id=project.id,
        unit_id=data.unit_id,
        amount=data.amount,
        currency=project.currency,
        conditional=data.conditional,
    )


def _pledge_project(session: Session, actor: Actor, pledge_id: int) -> tuple[Pledge, Project]:
    found = session.get(Pledge, pledge_id)
    if found is None:
        raise NotFound("no such pledge")
    book = session.get(ledger.Ledger, found.ledger_id)
    assert book is not None
    return found, get_project(session, actor, book.project_id)


def mark_met(session: Session, actor: Actor, pledge_id: int, key: str) -> schemas.EntryRef:
    """A conditional pledge's condition is met: it becomes a receivable."""
    _, project = _pledge_project(session, actor, pledge_id)
    _lead(actor, project)
    entry = ledger.mark_pledge_met(session, pledge_id, key=key, actor_id=actor.user_id)
    _audit(session, actor, "funds.pledge_met", project, entry.id, {"pledge_id": pledge_id})
    return _entry_ref(entry, project)


def receive(
    session: Session, actor: Actor, pledge_id: int, data: schemas.ReceiptCreate, key: str
) -> schemas.EntryRef:
    """Money arrived against a pledge."""
    _, project = _pledge_project(session, actor, pledge_id)
    _lead(actor, project)
    entry = ledger.receive_pledge(
        session,
        pledge_id,
        _money(project, data.amount),
        key=key,
        memo=data.memo,
        actor_id=actor.user_id,
    )
    _audit(
        session,
        actor,
        "funds.receipt",
        project,
        entry.id,
        {"pledge_id": pledge_id, "amount": data.amount},
    )
    return _entry_ref(entry, project)


def contribute(
    session: Session,
    actor: Actor,
    project_id: uuid.UUID,
    data: schemas.ContributionCreate,
    key: str,
) -> schemas.EntryRef:
    """A unit pays in directly (or contributes in kind)."""
    project = _writable(session, actor, project_id)
    _unit_manager(actor, project, data.unit_id)
    if data.in_kind:
        if not data.memo:
            raise InvalidInput("memo: say what was contributed in kind", field="memo")
        entry = ledger.contribute_in_kind(
            session,
            project.id,
            data.unit_id,
            _money(project, data.amount),
            key=key,
            memo=data.memo,
            actor_id=actor.user_id,
        )
    else:
        entry = ledger.contribute(
            session,
            project.id,
            data.unit_id,
            _money(project, data.amount),
            key=key,
            memo=data.memo,
            actor_id=actor.user_id,
        )
    _audit(session, actor, "funds.contribution", project, entry.id, data.model_dump(mode="json"))
    return _entry_ref(entry, project)


def refund(
    session: Session, actor: Actor, project_id: uuid.UUID, data: schemas.RefundCreate, key: str
) -> schemas.EntryRef:
    """Pay money back to a contributing unit."""
    project = _writable(session, actor, project_id)
    _lead(actor, project)
    entry = ledger.refund(
        session,
        project.id,
        data.unit_id,
        _money(project, data.amount),
        key=key,
        memo=data.memo,
        actor_id=actor.user_id,
    )
    _audit(session, actor, "funds.refund", project, entry.id, data.model_dump(mode="json"))
    return _entry_ref(entry, project)


def expense(
    session: Session, actor: Actor, project_id: uuid.UUID, data: schemas.ExpenseCreate, key: str
) -> schemas.EntryRef:
    """Spend from the project's cash."""
    project = _writable(session, actor, project_id)
    _lead(actor, project)
    entry = ledger.record_expense(
        session,
        project.id,
        [(line.category, _money(project, line.amount)) for line in data.lines],
        key=key,
        memo=data.memo,
        actor_id=actor.user_id,
        unit_id=actor.unit_id,
    )
    _audit(session, actor, "funds.expense", project, entry.id, data.model_dump(mode="json"))
    return _entry_ref(entry, project)


def transfer(
    session: Session, actor: Actor, project_id: uuid.UUID, data: schemas.TransferCreate, key: str
) -> list[schemas.EntryRef]:
    """Move free cash between two projects (admins only; both sides audited)."""
    actor.require(action="transferring between projects")
    source = _writable(session, actor, project_id)
    target = _writable(session, actor, data.to_project_id)
    out, into = ledger.transfer(
        session,
        source.id,
        target.id,
        _money(source, data.amount),
        key=key,
        actor_id=actor.user_id,
        reason=data.reason,
    )
    _audit(
        session,
        actor,
        "funds.transfer_out",
        source,
        out.id,
        {"to_project_id": str(target.id), "amount": data.amount},
        data.reason,
    )
    _audit(
        session,
        actor,
        "funds.transfer_in",
        target,
        into.id,
        {"from_project_id": str(source.id), "amount": data.amount},
        data.reason,
    )
    return [_entry_ref(out, source), _entry_ref(into, target)]


def reverse(
    session: Session,
    actor: Actor,
    project_id: uuid.UUID,
    entry_id: int,
    data: schemas.ReversalCreate,
    key: str,
) -> schemas.EntryRef:
    """Reverse an entry of the project (a correcting entry pointing at it)."""
    project = _writable(session, actor, project_id)
    _lead(actor, project)
    entry = session.get(Entry, entry_id)
    book = session.get(ledger.Ledger, entry.ledger_id) if entry else None
    if entry is None or book is None or book.project_id != project.id:
        raise NotFound("no such entry in this project")
    made = ledger.reverse(session, entry_id, key=key, reason=data.reason, actor_id=actor.user_id)
    _audit(session, actor, "funds.reversal", project, made.id, {"reverses": entry_id}, data.reason)
    return _entry_ref(made, project)


def statement(session: Session, actor: Actor, project_id: uuid.UUID) -> ledger.FundStatement:
    """The project's fund statement, with each unit's actual share against its agreed one."""
    project = readable_project(session, actor, project_id)
    ledger.open_ledger(session, project.id, project.currency)
    return ledger.fund_statement(
        session, project.id, {s.unit_id: s.share_bp for s in project.shares}
    )


def entries(
    session: Session,
    actor: Actor,
    project_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    account: str | None,
    kind: str | None,
    after: int | None,
    limit: int,
) -> ledger.RegisterPage:
    """A page of the project's register."""
    project = readable_project(session, actor, project_id)
    ledger.open_ledger(session, project.id, project.currency)
    return ledger.register(
        session,
        project.id,
        since=since,
        until=until,
        account=account,
        kinds=[kind] if kind else None,
        after=after,
        limit=limit,
    )


def entries_csv(
    session: Session,
    actor: Actor,
    project_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    account: str | None,
    kind: str | None,
) -> str:
    """The register as CSV."""
    project = readable_project(session, actor, project_id)
    ledger.open_ledger(session, project.id, project.currency)
    return ledger.register_csv(
        session,
        project.id,
        since=since,
        until=until,
        account=account,
        kinds=[kind] if kind else None,
    )


def unit_statement(session: Session, actor: Actor, unit_id: uuid.UUID) -> ledger.UnitStatement:
    """What a unit contributed, consumed and earned by lending, across projects."""
    if not (actor.sees_everything or actor.unit_id == unit_id):
        raise NotFound("no such unit statement")
    return ledger.unit_statement(session, unit_id)
