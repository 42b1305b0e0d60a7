"""Every kind of notification event, and which roles of a named unit receive it.

A service calls ``outbox.emit(session, kinds.X, ...)`` with the units and users concerned;
a unit's users receive an event when they hold one of the roles listed for its kind here
(the users named directly always receive it, the actor never does).
"""

from __future__ import annotations

from app.auth.models import Role

APPROVAL_NEEDED = "approval_needed"
"""A loan waits for the lending unit's approval (booking ``pending_approval``)."""
APPROVED = "approved"
"""The lender approved a loan."""
DECLINED = "declined"
"""The lender declined a loan."""
CANCELLED = "cancelled"
"""A booking was cancelled by the other side (lender or borrower)."""
DISPLACED = "displaced"
"""A booking was displaced by an allocation run or an emergency request, or reopened."""
NO_SHOW_RELEASED = "no_show_released"
"""A booking was released because nobody checked in."""
WAITLIST_OFFER = "waitlist_offer"
"""Freed time is offered to a waiting request (until a deadline)."""
RUN_DONE = "run_done"
"""An allocation run finished (done or failed)."""
BUDGET_REFUSED = "budget_refused"
"""A booking or hold was refused because the project lacks funds."""
UNAVAILABLE_OVER_BOOKING = "unavailable_over_booking"
"""Leave or a maintenance blackout now lies over a booking."""
AGREEMENT_ENDING = "agreement_ending"
"""A sharing agreement was terminated or reaches its end date."""
PLEDGE_OVERDUE = "pledge_overdue"
"""A pledge is past its due date and not met."""

_MANAGERS = (Role.UNIT_MANAGER.value, Role.RESOURCE_MANAGER.value)
_BORROWERS = (Role.REQUESTER.value, Role.PROJECT_LEAD.value)

UNIT_ROLES: dict[str, tuple[str, ...]] = {
    APPROVAL_NEEDED: (Role.RESOURCE_MANAGER.value,),
    APPROVED: _BORROWERS,
    DECLINED: _BORROWERS,
    CANCELLED: _MANAGERS + _BORROWERS,
    DISPLACED: _BORROWERS,
    NO_SHOW_RELEASED: _MANAGERS + _BORROWERS,
    WAITLIST_OFFER: _BORROWERS,
    RUN_DONE: (Role.UNIT_MANAGER.value, Role.PROJECT_LEAD.value),
    BUDGET_REFUSED: (Role.PROJECT_LEAD.value,),
    UNAVAILABLE_OVER_BOOKING: _MANAGERS + _BORROWERS,
    AGREEMENT_ENDING: (Role.UNIT_MANAGER.value,),
    PLEDGE_OVERDUE: (Role.UNIT_MANAGER.value, Role.PROJECT_LEAD.value),
}
"""For each kind, the roles of a named unit's users who receive it."""

ALL: tuple[str, ...] = tuple(UNIT_ROLES)
"""Every event kind, in a stable order."""

BOOKING_KINDS = frozenset(
    {
        APPROVAL_NEEDED,
        APPROVED,
        DECLINED,
        CANCELLED,
        DISPLACED,
        NO_SHOW_RELEASED,
        UNAVAILABLE_OVER_BOOKING,
    }
)
"""Kinds whose subject is a booking (an e-mail carries the booking's ``.ics``)."""

CANCELLING_KINDS = frozenset({DECLINED, CANCELLED, DISPLACED, NO_SHOW_RELEASED})
"""Booking kinds after which the booking is no longer live (``METHOD:CANCEL``)."""
