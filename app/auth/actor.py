"""The acting user, passed explicitly to every service function (never a global)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.auth.models import Role
from app.errors import PermissionDenied


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: a user of one unit with some roles."""

    user_id: uuid.UUID
    unit_id: uuid.UUID
    roles: frozenset[Role]
    name: str = ""

    @property
    def is_admin(self) -> bool:
        """Admins act on every unit's data."""
        return Role.ADMIN in self.roles

    @property
    def sees_everything(self) -> bool:
        """Admins and auditors may read every unit's data (auditors only read)."""
        return Role.ADMIN in self.roles or Role.AUDITOR in self.roles

    def has(self, *roles: Role) -> bool:
        """Whether the actor holds any of ``roles`` (admins hold them all)."""
        return self.is_admin or any(r in self.roles for r in roles)

    def require(self, *roles: Role, action: str) -> None:
        """Raise ``PermissionDenied`` unless the actor holds one of ``roles``."""
        if not self.has(*roles):
            wanted = " or ".join(r.value for r in roles) or "admin"
            raise PermissionDenied(f"{action} needs the role {wanted}")

    def manages_unit(self, unit_id: uuid.UUID, *roles: Role) -> bool:
        """Whether the actor holds one of ``roles`` in ``unit_id`` (or is admin)."""
        return self.is_admin or (unit_id == self.unit_id and any(r in self.roles for r in roles))


SYSTEM = Actor(
    user_id=uuid.UUID(int=0), unit_id=uuid.UUID(int=0), roles=frozenset({Role.ADMIN}), name="system"
)
"""The actor of CLI commands and background jobs run by an operator."""
