"""The ``copool`` command: serve, migrate, seed the demo, manage users and API keys."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import services as auth
from app.auth.actor import SYSTEM
from app.auth.models import ApiKey, Role, User
from app.auth.schemas import UserCreate
from app.db import make_engine, make_session_factory, session_scope
from app.errors import CopoolError
from app.settings import get_settings
from app.units.models import Unit


@contextmanager
def _scope() -> Iterator[Session]:
    engine = make_engine(get_settings().database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


class _Commands(click.Group):
    """Commands whose domain and input errors end as a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CopoolError as exc:
            raise click.ClickException(exc.detail) from exc
        except ValidationError as exc:
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise click.ClickException(message) from exc


@click.group(cls=_Commands)
def main() -> None:
    """copool: shared experts, devices and funds across joint projects."""


@main.command()
@click.option("--host", default=None, help="Bind address (default COPOOL_HOST).")
@click.option("--port", type=int, default=None, help="Port (default COPOOL_PORT).")
@click.option(
    "--workers", type=int, default=None, help="Worker processes (default COPOOL_WORKERS)."
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    from app.ops import multiproc

    settings = get_settings()
    multiproc.prepare()  # before the workers start: /metrics sums every worker's
    uvicorn.run(
        "app.main:app_factory",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,  # no "server: uvicorn" banner
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,  # whose X-Forwarded-For is believed
    )


@main.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Allocation runs solved at once (default COPOOL_ALLOCATION_PROCESSES).",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    type=click.Choice(["allocation", "periodic"]),
    help="Only these queues (repeat; default both).",
)
def worker(concurrency: int | None, queues: tuple[str, ...]) -> None:
    """Run background jobs from the PostgreSQL queue until SIGTERM or Ctrl-C (running
    allocation runs are handed back to the queue)."""
    settings = get_settings()
    if settings.is_sqlite:
        raise click.ClickException(
            "copool worker needs PostgreSQL; on SQLite `copool serve` runs the jobs itself"
        )
    from app.jobs.queue import run_worker

    run_worker(
        settings,
        concurrency=concurrency or settings.allocation_processes,
        queues=list(queues) or None,
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from app.migrate import upgrade

    settings = get_settings()
    if settings.is_sqlite:
        from pathlib import Path

        path = settings.database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    upgrade(settings.owner_url, revision)


@db.command("grant")
@click.option("--app-role", required=True, help="The role COPOOL_DATABASE_URL connects as.")
@click.option(
    "--password-env",
    default=None,
    help="Name of an environment variable holding the role's password (set when given).",
)
def db_grant(app_role: str, password_env: str | None) -> None:
    """PostgreSQL: create the app role if needed and grant it only what the app needs
    (append-only tables: SELECT and INSERT); run as the owner after every upgrade."""
    import os

    from app.dbroles import grant_app_role

    password = os.environ.get(password_env, "") if password_env else None
    if password_env and not password:
        raise click.ClickException(f"{password_env} is not set")
    engine = make_engine(get_settings().owner_url)
    try:
        with engine.begin() as conn:
            tables = grant_app_role(conn, app_role, password)
    finally:
        engine.dispose()
    click.echo(f"granted {app_role} its privileges on {len(tables)} tables")


def _report(report: Any) -> None:
    """Print an integrity report: its findings on stderr, then its summary; exit 1 if bad."""
    for finding in report.findings:
        click.echo(str(finding), err=True)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


@main.group()
def ledger() -> None:
    """The project ledgers."""


@ledger.command("verify")
def ledger_verify() -> None:
    """Check every ledger invariant; exit 1 naming the first bad row."""
    from app.funds.verify import verify_ledger

    with _scope() as session:
        report = verify_ledger(session)
    _report(report)


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
@click.option("--no-seal", is_flag=True, help="Verify without sealing settled rows first.")
def audit_verify(no_seal: bool) -> None:
    """Seal the settled audit rows, then check the chain; exit 1 naming the first bad row."""
    from app.audit.chain import ChainBroken, seal_all, verify_audit

    if not no_seal:
        try:
            with _scope() as session:
                seal_all(session)
        except ChainBroken as exc:  # verify names the bad row
            click.echo(f"not sealed: {exc.detail}", err=True)
    with _scope() as session:
        report = verify_audit(session)
    _report(report)


@main.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has data.")
def seed_demo(if_empty: bool) -> None:
    """Fill the database with the demo and write the admin's key to var/demo-admin.key."""
    from app.seed import database_is_empty
    from app.seed import seed_demo as seed

    settings = get_settings()
    with _scope() as session:
        if not database_is_empty(session):
            if if_empty:
                click.echo(
                    f"database has data; demo not seeded (admin key: {settings.demo_key_path})"
                )
                return
            raise click.ClickException("the database is not empty")
        result = seed(session)
    settings.demo_key_path.parent.mkdir(parents=True, exist_ok=True)
    settings.demo_key_path.write_text(result.admin_token + "\n")
    settings.demo_key_path.chmod(0o600)
    click.echo(
        f"demo seeded: {result.units} units, {result.experts} experts, {result.devices} devices, "
        f"{result.projects} projects, {result.requests} open requests"
    )
    click.echo(f"demo admin API key (shown once, also in {settings.demo_key_path}):")
    click.echo(result.admin_token)
    _print_demo_logins(settings)


def _print_demo_logins(settings: Any) -> None:
    """One-time dashboard links (15 minutes) for a few demo users."""
    from app.seed import DEMO_LOGINS
    from app.ui.sessions import issue_login_link

    base = (settings.public_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    click.echo("dashboard sign-in links (each works once, for 15 minutes; later: "
               "copool users login-link EMAIL):")
    with _scope() as session:
        for who, email in DEMO_LOGINS:
            click.echo(f"  {who:<28} {base}/ui/login/{issue_login_link(session, email)}")


@main.group()
def units() -> None:
    """Units."""


@units.command("create")
@click.option("--name", required=True)
@click.option("--code", required=True)
@click.option("--time-zone", default="UTC", show_default=True, help="IANA zone, e.g. Europe/Berlin")
def units_create(name: str, code: str, time_zone: str) -> None:
    """Create a unit (to bootstrap a new installation)."""
    from app.units.schemas import UnitCreate
    from app.units.services import create_unit

    with _scope() as session:
        unit = create_unit(session, SYSTEM, UnitCreate(name=name, code=code, time_zone=time_zone))
        click.echo(str(unit.id))


@main.group()
def users() -> None:
    """Users."""


@users.command("create")
@click.option("--unit", "unit_code", required=True, help="Unit code, e.g. FEA.")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="Repeat for several roles.",
)
def users_create(unit_code: str, name: str, email: str, roles: tuple[str, ...]) -> None:
    """Create a user; prints the user's id."""
    with _scope() as session:
        unit = session.scalar(select(Unit).where(Unit.code == unit_code))
        if unit is None:
            raise click.ClickException(f"no unit with code {unit_code!r}")
        user = auth.create_user(
            session,
            SYSTEM,
            UserCreate(unit_id=unit.id, name=name, email=email, roles=[Role(r) for r in roles]),
        )
        click.echo(str(user.id))


@users.command("login-link")
@click.argument("email")
@click.option("--base-url", default=None, help="Base URL of copool (default COPOOL_PUBLIC_BASE_URL).")
def users_login_link(email: str, base_url: str | None) -> None:
    """Print a one-time dashboard sign-in link (15 minutes, used once) for a user."""
    from app.ui.sessions import issue_login_link

    settings = get_settings()
    base = (base_url or settings.public_base_url or f"http://{settings.host}:{settings.port}")
    with _scope() as session:
        token = issue_login_link(session, email)
    click.echo(f"{base.rstrip('/')}/ui/login/{token}")


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("issue")
@click.option("--email", required=True, help="The user's email.")
@click.option("--name", default="", help="A label for the key.")
@click.option(
    "--expires-in",
    type=click.IntRange(min=1),
    default=None,
    metavar="DAYS",
    help="The key stops working after this many days (required, and at most "
    "COPOOL_API_KEY_MAX_DAYS, when that is set).",
)
def keys_issue(email: str, name: str, expires_in: int | None) -> None:
    """Issue an API key; the token is printed once and never stored."""
    from datetime import timedelta

    from app.base import utcnow

    expires_at = utcnow() + timedelta(days=expires_in) if expires_in else None
    with _scope() as session:
        user = session.scalar(select(User).where(User.email == email.lower()))
        if user is None:
            raise click.ClickException(f"no user with email {email!r}")
        key, token = auth.issue_key(
            session,
            SYSTEM,
            user.id,
            name,
            expires_at=expires_at,
            max_days=get_settings().api_key_max_days,
        )
        click.echo(f"key id: {key.id}", err=True)
        click.echo(token)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--reason", default="")
def keys_revoke(key_id: str, reason: str) -> None:
    """Revoke an API key by its id (or by its printed prefix)."""
    with _scope() as session:
        try:
            ident = uuid.UUID(key_id)
        except ValueError:
            found = session.scalar(select(ApiKey.id).where(ApiKey.prefix == key_id))
            if found is None:
                raise click.ClickException(f"no key {key_id!r}") from None
            ident = found
        auth.revoke_key(session, SYSTEM, ident, reason)
        click.echo(f"revoked {ident}")


@main.group()
def bookings() -> None:
    """Bookings."""


@bookings.command("sweep")
def bookings_sweep() -> None:
    """Release device no-shows, expire open requests whose window passed, expire due holds,
    purge idempotency records past their time to live."""
    from datetime import timedelta

    import ledger
    from app.base import utcnow
    from app.bookings import idempotency
    from app.bookings.services import sweep

    with _scope() as session:
        counts = sweep(session, SYSTEM)
        holds = ledger.expire_due_holds(session)
        ttl = timedelta(hours=get_settings().idempotency_ttl_hours)
        purged = idempotency.purge(session, utcnow(), ttl)
    click.echo(
        f"released {counts['released']} no-shows, expired {counts['expired']} requests, "
        f"{len(holds)} holds past their deadline and {purged} idempotency records"
    )


def run() -> None:
    """Entry point that turns domain errors into a one-line message."""
    try:
        main()
    except CopoolError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
