"""HTTP routes for sharing agreements."""

from __future__ import annotations

import uuid

from litestar import Controller
from sqlalchemy.orm import Session

from app.agreements import services
from app.agreements.schemas import AgreementCreate, AgreementRead, AgreementUpdate, Termination
from app.auth.actor import Actor
from app.pagination import Limit, Offset
from app.problems import LIST, READ, WRITE
from app.routing import get, patch, post
from app.schemas import Page


class AgreementController(Controller):
    """Lender → borrower agreements; parties and auditors see them."""

    path = "/agreements"
    tags = ["agreements"]

    @get("/", responses=LIST, summary="List agreements of the caller's unit")
    def list_agreements(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        lender_unit_id: uuid.UUID | None = None,
        borrower_unit_id: uuid.UUID | None = None,
        active: bool | None = None,
    ) -> Page[AgreementRead]:
        rows, total = services.list_agreements(
            db_session,
            actor,
            limit=limit,
            offset=offset,
            lender_unit_id=lender_unit_id,
            borrower_unit_id=borrower_unit_id,
            active=active,
        )
        return Page[AgreementRead](
            items=[services.to_read(a) for a in rows], total=total, limit=limit, offset=offset
        )

    @post("/", responses=WRITE, summary="Grant an agreement (lender's unit manager)")
    def create_agreement(
        self, actor: Actor, db_session: Session, data: AgreementCreate
    ) -> AgreementRead:
        return services.to_read(services.create_agreement(db_session, actor, data))

    @get("/{agreement_id:uuid}", responses=READ, summary="One agreement")
    def get_agreement(
        self, actor: Actor, db_session: Session, agreement_id: uuid.UUID
    ) -> AgreementRead:
        return services.to_read(services.get_agreement(db_session, actor, agreement_id))

    @patch("/{agreement_id:uuid}", responses=WRITE, summary="Change an agreement's terms")
    def update_agreement(
        self, actor: Actor, db_session: Session, agreement_id: uuid.UUID, data: AgreementUpdate
    ) -> AgreementRead:
        agreement = services.update_agreement(db_session, actor, agreement_id, data)
        return services.to_read(agreement)

    @post(
        "/{agreement_id:uuid}/terminate",
        status_code=200,
        responses=WRITE,
        summary="End an agreement",
        description="Live loans under the agreement that have not ended are refused with "
        "409 `affects_bookings` (listed in `conflicts`) unless `force` is true: then they "
        "are released (a request they serve goes back to open).",
    )
    def terminate_agreement(
        self, actor: Actor, db_session: Session, agreement_id: uuid.UUID, data: Termination
    ) -> AgreementRead:
        agreement = services.terminate_agreement(
            db_session, actor, agreement_id, data.reason, force=data.force
        )
        return services.to_read(agreement)
