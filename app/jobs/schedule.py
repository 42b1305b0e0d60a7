"""The periodic jobs: what runs, how often (a cron line for procrastinate, an interval for
the in-process worker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.bookings import waitlist
from app.jobs import tasks
from app.notifications import jobs as notifications
from app.notifications import pledges


@dataclass(frozen=True)
class Periodic:
    """A job body run every ``every`` (``cron`` says the same to procrastinate)."""

    name: str
    body: tasks.PeriodicBody
    every: timedelta
    cron: str


SCHEDULE: list[Periodic] = [
    # no-show release, request expiry and hold expiry, as `copool bookings sweep`
    Periodic("sweep", tasks.sweep, timedelta(minutes=1), "* * * * *"),
    Periodic("purge_idempotency", tasks.purge_idempotency, timedelta(hours=1), "7 * * * *"),
    # runs whose worker died: queued again (and enqueued) or failed with the reason
    Periodic("recover_runs", tasks.recover, timedelta(seconds=15), "* * * * * */15"),
    # freed time re-planned for waiting requests, offers past their deadline passed on
    Periodic("waitlist", waitlist.run_job, timedelta(seconds=15), "* * * * * */15"),
    # the audit log's unsealed tail is at most a minute old (what `audit verify` seals first)
    Periodic("seal_audit", tasks.seal_audit, timedelta(minutes=1), "* * * * *"),
    # the integrity checks of `copool ledger verify` and `copool audit verify`, daily
    Periodic("ledger_verify", tasks.verify_ledger, timedelta(days=1), "30 3 * * *"),
    Periodic("audit_verify", tasks.verify_audit, timedelta(days=1), "45 3 * * *"),
    # notifications: due webhooks and e-mails (app/notifications/delivery.py), and the digest
    Periodic("deliver_notifications", notifications.deliver, timedelta(seconds=5), "* * * * * */5"),
    Periodic("notification_digest", notifications.digest, timedelta(days=1), "0 7 * * *"),
    Periodic("pledges_overdue", pledges.run, timedelta(days=1), "15 6 * * *"),
]
"""Every periodic job; both the procrastinate worker and the in-process worker run these."""
