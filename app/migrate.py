"""Run Alembic from code (CLI, tests, ``make run``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

INI = Path(__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at ``url``."""
    config = Config(str(INI))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at ``url`` to ``revision`` (every head by default)."""
    command.upgrade(alembic_config(url), revision)
