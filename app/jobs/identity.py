"""Who owns a running run, and whether that owner is still alive.

An owner is ``host:pid:boot``; ``boot`` is random per process start, so a reused pid is
not mistaken for the old process by name alone. Liveness is decided by the run's
heartbeat (any host); an owner on this host whose process is gone (or a zombie) is dead
at once, without waiting for its heartbeat to go stale.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

BOOT = uuid.uuid4().hex[:8]
"""This process's start (changes on every start, even when the pid is reused)."""


def this_owner() -> str:
    """This process as a run's owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{BOOT}"


def owner_is_gone(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that no longer runs (or is a zombie)."""
    host, _, rest = owner.partition(":")
    pid_text, _, boot = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return boot != BOOT
    if not os.path.isdir("/proc"):
        return not _signalable(pid)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # the state is the field after the parenthesised command name
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        return False


def is_dead(owner: str, heartbeat_at: datetime | None, now: datetime, stale: timedelta) -> bool:
    """Whether a running run's owner is dead: its heartbeat is stale or its process gone."""
    if heartbeat_at is None or now - heartbeat_at > stale:
        return True
    return owner_is_gone(owner)


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
