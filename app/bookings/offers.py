"""The waitlist's offers over HTTP: a request's offers, accept, decline (app.bookings.waitlist)."""

from __future__ import annotations

import uuid

from litestar import Controller
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings import waitlist
from app.bookings.schemas import OfferRead
from app.problems import READ, WRITE
from app.routing import get, post


class OfferController(Controller):
    """Freed time offered to waiting requests."""

    tags = ["requests"]

    @get(
        "/requests/{request_id:uuid}/offers",
        responses=READ,
        summary="The offers of freed time made to a waiting request, newest first",
    )
    def list_offers(
        self, actor: Actor, db_session: Session, request_id: uuid.UUID
    ) -> list[OfferRead]:
        offers = waitlist.offers_of(db_session, actor, request_id)
        return [OfferRead.model_validate(o) for o in offers]

    @post(
        "/offers/{offer_id:uuid}/accept",
        status_code=200,
        responses=WRITE,
        summary="Accept an offer: its time is booked for the request (first to accept wins)",
        description=(
            "Applied through the allocation runs' apply path and confirmed. 409 "
            "`offer_lost` when another request took the time first, `offer_expired` past "
            "the deadline, `wrong_status` when already answered."
        ),
    )
    def accept(self, actor: Actor, db_session: Session, offer_id: uuid.UUID) -> OfferRead:
        return OfferRead.model_validate(waitlist.accept_offer(db_session, actor, offer_id))

    @post(
        "/offers/{offer_id:uuid}/decline",
        status_code=200,
        responses=WRITE,
        summary="Decline an offer: the time passes to the next-best waiting request",
    )
    def decline(self, actor: Actor, db_session: Session, offer_id: uuid.UUID) -> OfferRead:
        return OfferRead.model_validate(waitlist.decline_offer(db_session, actor, offer_id))
