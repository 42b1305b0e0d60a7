"""HTTP routes for units."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller
from litestar.params import Parameter
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.pagination import Limit, Offset, page
from app.problems import LIST, READ, WRITE
from app.routing import get, patch, post
from app.schemas import Page, Reason
from app.units import services
from app.units.schemas import UnitCreate, UnitRead, UnitUpdate


class UnitController(Controller):
    """The directory of units."""

    path = "/units"
    tags = ["units"]

    @get("/", responses=LIST, summary="List units")
    def list_units(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        q: Annotated[str | None, Parameter(max_length=100)] = None,
        include_retired: bool = False,
    ) -> Page[UnitRead]:
        rows, total = services.list_units(
            db_session, limit=limit, offset=offset, q=q, include_retired=include_retired
        )
        return page(UnitRead, rows, total, limit, offset)

    @post("/", responses=WRITE, summary="Create a unit (admin)")
    def create_unit(self, actor: Actor, db_session: Session, data: UnitCreate) -> UnitRead:
        return UnitRead.model_validate(services.create_unit(db_session, actor, data))

    @get("/{unit_id:uuid}", responses=READ, summary="One unit")
    def get_unit(self, actor: Actor, db_session: Session, unit_id: uuid.UUID) -> UnitRead:
        return UnitRead.model_validate(services.get_unit(db_session, unit_id))

    @patch("/{unit_id:uuid}", responses=WRITE, summary="Change a unit")
    def update_unit(
        self, actor: Actor, db_session: Session, unit_id: uuid.UUID, data: UnitUpdate
    ) -> UnitRead:
        return UnitRead.model_validate(services.update_unit(db_session, actor, unit_id, data))

    @post("/{unit_id:uuid}/retire", status_code=200, responses=WRITE, summary="Retire a unit")
    def retire_unit(
        self, actor: Actor, db_session: Session, unit_id: uuid.UUID, data: Reason
    ) -> UnitRead:
        return UnitRead.model_validate(
            services.retire_unit(db_session, actor, unit_id, data.reason)
        )
