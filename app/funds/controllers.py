"""HTTP routes for project funds and unit statements."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response
from litestar.params import Parameter
from sqlalchemy.orm import Session

import ledger
from app.auth.actor import Actor
from app.funds import schemas, services
from app.pagination import Limit, OptionalInstant
from app.problems import WRITE, problems
from app.routing import get, post
from app.schemas import aware

AnyRequest = Request[Any, Any, Any]
Account = Annotated[str | None, Parameter(max_length=200, description="Account key")]
EntryKindName = Literal[
    "pledge",
    "receipt",
    "contribution",
    "in_kind",
    "refund",
    "transfer_out",
    "transfer_in",
    "hold",
    "charge",
    "release",
    "expiry",
    "expense",
    "reversal",
]
Kind = Annotated[EntryKindName | None, Parameter(description="Entry kind")]
MAX_ID = 2**53 - 1
"""Entry and pledge numbers: a larger one is refused with 400, never a 500. 2**53 - 1, not
2**63 - 1: the OpenAPI document writes the bound as a JSON number, and 2**63 - 1 rounds up
to 2**63, a bound the validation would not keep (ids never come near either)."""
EntryId = Annotated[int, Parameter(ge=1, le=MAX_ID)]
READ_FUNDS = problems(400, 401, 403, 404)
"""Reading a project's ledger: 403 for a participant who is neither member nor manager."""


def _key(request: AnyRequest) -> str:
    """The ledger's idempotency key: the caller's Idempotency-Key, or a fresh one."""
    given = request.headers.get("idempotency-key")
    return f"api:{given}" if given else f"api:{uuid.uuid4()}"


class ProjectFundsController(Controller):
    """A project's ledger: statement, register, and the funding flows."""

    path = "/projects/{project_id:uuid}/funds"
    tags = ["funds"]

    @get("/statement", responses=READ_FUNDS, summary="Fund statement: totals and per unit")
    def statement(
        self, actor: Actor, db_session: Session, project_id: uuid.UUID
    ) -> ledger.FundStatement:
        return services.statement(db_session, actor, project_id)

    @get("/entries", responses=READ_FUNDS, summary="Register of entries (paginated by entry id)")
    def entries(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        since: OptionalInstant = None,
        until: OptionalInstant = None,
        account: Account = None,
        kind: Kind = None,
        after: Annotated[
            int | None, Parameter(ge=0, le=MAX_ID, description="Last entry id seen")
        ] = None,
        limit: Limit = 50,
    ) -> ledger.RegisterPage:
        return services.entries(
            db_session,
            actor,
            project_id,
            since=aware(since, "since"),
            until=aware(until, "until"),
            account=account,
            kind=kind,
            after=after,
            limit=limit,
        )

    @get("/entries.csv", responses=READ_FUNDS, summary="Register as CSV", media_type="text/csv")
    def entries_csv(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        since: OptionalInstant = None,
        until: OptionalInstant = None,
        account: Account = None,
        kind: Kind = None,
    ) -> Response[str]:
        text = services.entries_csv(
            db_session,
            actor,
            project_id,
            since=aware(since, "since"),
            until=aware(until, "until"),
            account=account,
            kind=kind,
        )
        return Response(
            text,
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="ledger-{project_id}.csv"'},
        )

    @post("/pledges", responses=WRITE, summary="Pledge money (the unit's manager)")
    def pledge(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        data: schemas.PledgeCreate,
        request: AnyRequest,
    ) -> schemas.PledgeRef:
        return services.pledge(db_session, actor, project_id, data, _key(request))

    @post("/contributions", responses=WRITE, summary="Contribute money or in kind")
    def contribute(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        data: schemas.ContributionCreate,
        request: AnyRequest,
    ) -> schemas.EntryRef:
        return services.contribute(db_session, actor, project_id, data, _key(request))

    @post("/refunds", responses=WRITE, summary="Refund a contributing unit (project lead)")
    def refund(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        data: schemas.RefundCreate,
        request: AnyRequest,
    ) -> schemas.EntryRef:
        return services.refund(db_session, actor, project_id, data, _key(request))

    @post("/expenses", responses=WRITE, summary="Record spending by category (project lead)")
    def expense(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        data: schemas.ExpenseCreate,
        request: AnyRequest,
    ) -> schemas.EntryRef:
        return services.expense(db_session, actor, project_id, data, _key(request))

    @post("/transfers", responses=WRITE, summary="Transfer to another project (admin)")
    def transfer(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        data: schemas.TransferCreate,
        request: AnyRequest,
    ) -> list[schemas.EntryRef]:
        return services.transfer(db_session, actor, project_id, data, _key(request))

    @post("/entries/{entry_id:int}/reverse", responses=WRITE, summary="Reverse an entry")
    def reverse(
        self,
        actor: Actor,
        db_session: Session,
        project_id: uuid.UUID,
        entry_id: EntryId,
        data: schemas.ReversalCreate,
        request: AnyRequest,
    ) -> schemas.EntryRef:
        return services.reverse(db_session, actor, project_id, entry_id, data, _key(request))


class PledgeController(Controller):
    """Receipts against pledges."""

    path = "/pledges"
    tags = ["funds"]

    @post("/{pledge_id:int}/receipts", responses=WRITE, summary="Money received on a pledge")
    def receive(
        self,
        actor: Actor,
        db_session: Session,
        pledge_id: EntryId,
        data: schemas.ReceiptCreate,
        request: AnyRequest,
    ) -> schemas.EntryRef:
        return services.receive(db_session, actor, pledge_id, data, _key(request))

    @post(
        "/{pledge_id:int}/met", responses=WRITE, summary="A conditional pledge's condition is met"
    )
    def met(
        self, actor: Actor, db_session: Session, pledge_id: EntryId, request: AnyRequest
    ) -> schemas.EntryRef:
        return services.mark_met(db_session, actor, pledge_id, _key(request))


class UnitFundsController(Controller):
    """A unit's balance across projects."""

    path = "/units/{unit_id:uuid}/funds"
    tags = ["funds"]

    @get(
        "/statement",
        responses=READ_FUNDS,
        summary="Contributed, consumed and earned by lending, across projects",
    )
    def statement(
        self, actor: Actor, db_session: Session, unit_id: uuid.UUID
    ) -> ledger.UnitStatement:
        return services.unit_statement(db_session, actor, unit_id)
