"""Settings, read once from the environment (prefix ``COPOOL_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob of the service; each one is documented in README.md."""

    model_config = SettingsConfigDict(env_prefix="COPOOL_", env_file=".env", extra="ignore")

    database_url: str = f"sqlite:///{ROOT / 'var' / 'copool.db'}"
    """SQLAlchemy URL. ``sqlite:///path`` (default) or ``postgresql+psycopg://user@host/db``."""
    database_owner_url: str = ""
    """PostgreSQL URL of the role that owns the tables, for ``copool db upgrade`` and
    ``copool db grant`` (empty: ``database_url``, the single-role setup)."""
    host: str = "127.0.0.1"
    """Address the HTTP server binds to."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port the HTTP server listens on."""
    workers: int = Field(default=1, ge=1, le=64)
    """Number of app worker processes (use more than one only with PostgreSQL)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the service's own loggers."""
    log_format: Literal["json", "text"] = "text"
    """Log lines as text or as one JSON object each, with the request id (``app.ops.logs``)."""
    debug: bool = False
    """Litestar debug mode: tracebacks in error answers. Never in production."""
    db_pool_size: int = Field(default=10, ge=1, le=200)
    """Connections per app worker kept open to PostgreSQL."""
    db_max_overflow: int = Field(default=20, ge=0, le=500)
    """Extra PostgreSQL connections a worker may open under load."""
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    pgbouncer: bool = False
    """PostgreSQL is reached through PgBouncer in transaction mode: no prepared statements,
    per-transaction settings only (``app.db``)."""
    """How long a SQLite writer waits for the write lock before giving up (503)."""
    demo_key_path: Path = ROOT / "var" / "demo-admin.key"
    """Where ``copool seed-demo`` writes the demo admin's API key."""
    max_page_size: int = Field(default=200, ge=1, le=1000)
    """Upper bound of ``limit`` on every list route."""
    max_range_days: int = Field(default=731, ge=1)
    """Longest date span a query or a period may cover, in days."""
    api_key_touch_seconds: int = Field(default=60, ge=0)
    """An API key's ``last_used_at`` is written at most this often (saves a write per request)."""
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """An authenticated API key is trusted this long per process without a lookup; a revocation
    or a user change reaches every other worker within it (0: look up every request)."""
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    """How long an ``Idempotency-Key`` answers with its first answer; older records are purged."""
    waitlist_offer_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    """How long freed time offered to a waiting request stays open before it passes on."""
    allocation_processes: int = Field(default=1, ge=1, le=16)
    """Allocation runs solved at once by one worker (``copool worker``'s default concurrency,
    or the in-process worker of ``copool serve``), each in its own process."""
    solver_workers: int = Field(default=2, ge=1, le=32)
    """CP-SAT search workers inside one allocation run."""
    jobs_in_process: bool | None = None
    """Run background jobs inside ``copool serve`` (default: yes on SQLite, no on PostgreSQL,
    where ``copool worker`` runs them)."""
    run_heartbeat_seconds: float = Field(default=5.0, gt=0, le=60)
    """How often the worker solving a run records that it is alive."""
    run_stale_seconds: float = Field(default=30.0, ge=5, le=3600)
    """A running run whose worker has been silent this long is taken back (retried or failed)."""
    run_max_attempts: int = Field(default=3, ge=1, le=20)
    """Workers a run may lose before it is failed with the reason."""
    max_active_runs: int = Field(default=4, ge=1, le=1000)
    """Allocation runs one unit may have queued or running at once (more: 409 ``too_many_runs``)."""
    public_base_url: str | None = None
    """Base URL under which the service is reached (used in links it hands out, e.g. feed
    URLs); unset, the scheme, host and port the request actually reached (behind a proxy
    from ``trusted_proxies``' forwarded headers). Read it through :meth:`public_base`."""
    max_in_flight: int = Field(default=24, ge=1, le=1000)
    """Requests one worker serves at once; more are answered 503 at once (``app.admission``).
    Kept below the worker's threads and database connections (pool + overflow)."""
    trusted_proxies: str = "127.0.0.1"
    """Comma-separated addresses whose ``X-Forwarded-For`` names the client (uvicorn's
    ``forwarded_allow_ips``); the throttle counts per client address."""
    throttle_window_seconds: int = Field(default=60, ge=1, le=86_400)
    """Length of a throttling window (fixed windows, shared by every worker)."""
    auth_failure_limit: int = Field(default=20, ge=0)
    """Failed authentications (bad API key, unknown feed token) one address may make per
    window before it gets 429 (0: no limit)."""
    write_limit_per_key: int = Field(default=12_000, ge=0)
    """Writes (non-GET requests) one API key may make per window before 429 (0: no limit)."""
    api_key_max_days: int = Field(default=0, ge=0, le=36_500)
    """Longest lifetime of an issued API key in days; longer (or no) expiry is refused (0: any)."""
    # notifications (app/notifications/): e-mail, webhooks, retries
    smtp_host: str = ""
    """SMTP server for notification e-mails (empty: no e-mail is sent)."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    """SMTP server port."""
    smtp_username: str = ""
    """SMTP login (empty: no login)."""
    smtp_password: str = ""
    """SMTP password."""
    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS before logging in and sending."""
    smtp_from: str = "copool <copool@localhost>"
    """The From: of notification e-mails."""
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long one SMTP conversation may take."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """How long a webhook receiver may take to answer (connect and read)."""
    webhook_allow_private: bool = False
    """Deliver webhooks to private, loopback and link-local addresses (refused by default)."""
    webhook_allow_http_loopback: bool = False
    """Accept ``http://`` webhook URLs whose host is a loopback address (development, tests)."""
    webhook_disable_after: int = Field(default=20, ge=1)
    """An endpoint is disabled after this many consecutive failed deliveries …"""
    webhook_disable_after_hours: float = Field(default=24.0, ge=0)
    """… spread over at least this many hours since the first of them."""
    notify_backoff_base_seconds: float = Field(default=30.0, gt=0)
    """Delay before a failed delivery's first retry; it doubles each attempt (with jitter)."""
    notify_backoff_max_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Longest delay between two attempts."""
    notify_retry_hours: float = Field(default=24.0, gt=0)
    """A delivery not made this long after its event is ``failed``."""
    notify_lease_seconds: float = Field(default=60.0, gt=0)
    """A claimed delivery whose worker died is due again after this long."""
    notify_batch_size: int = Field(default=100, ge=1, le=10_000)
    """Deliveries one worker claims at once."""
    notify_send_concurrency: int = Field(default=8, ge=1, le=64)
    """Webhook requests one worker sends at once."""
    pledge_due_days: int = Field(default=30, ge=1, le=3650)
    """A pledge still owing this many days after it was made is overdue (told once)."""

    @property
    def runs_jobs_in_process(self) -> bool:
        """Whether ``copool serve`` runs background jobs itself (always on SQLite)."""
        return self.is_sqlite or bool(self.jobs_in_process)

    @property
    def owner_url(self) -> str:
        """The URL migrations run with: the owner's, else the app's."""
        return self.database_owner_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        """Whether the configured database is SQLite."""
        return self.database_url.startswith("sqlite")

    def public_base(self, served: str) -> str:
        """The base of the links copool hands out: ``public_base_url``, else ``served``
        (the base URL the request reached), without a trailing slash."""
        return (self.public_base_url or served).rstrip("/")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
