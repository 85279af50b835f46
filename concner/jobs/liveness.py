"""Is a queue worker alive? The one answer, for the command line and the app alike.

A worker row (``worker_heartbeats``, written by :class:`concner.jobs.worker.Heartbeat`) is
alive when its status is not ``stopped``, its last heartbeat is fresher than
``services.lock_stale_seconds`` (the same timeout after which its retrain lock counts as
abandoned) and, when the row was written on this host, its pid is a live process. The pid
check is what catches a worker killed with SIGKILL: its row still says ``running`` and stays
fresh for up to a minute, but its process is gone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: the default timeout: ``ServicesConfig.lock_stale_seconds``'s default
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class WorkerLiveness:
    """One worker row, judged. ``state`` is ``running`` (alive), ``stopped`` (it said
    so), ``dead`` (its process on this host is gone) or ``silent`` (no heartbeat within
    the timeout)."""

    worker_id: str
    host: str
    pid: int | None
    state: str
    age_s: float
    current_run_id: int | None

    @property
    def alive(self) -> bool:
        return self.state == "running"


def pid_running(pid: int) -> bool:
    """Is ``pid`` a live (not zombie) process on this host?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) said it exists
    return state not in ("Z", "X")


def judge(row: Any, *, now: datetime | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
          hostname: str | None = None) -> WorkerLiveness:
    """:class:`WorkerLiveness` of one heartbeat row (anything with ``worker_id``, ``host``,
    ``pid``, ``status``, ``last_seen``, ``current_run_id``)."""
    now = now or datetime.now(UTC)
    last_seen = row.last_seen if row.last_seen.tzinfo else row.last_seen.replace(tzinfo=UTC)
    age = (now - last_seen).total_seconds()
    pid = getattr(row, "pid", None)
    host = getattr(row, "host", "")
    here = hostname if hostname is not None else socket.gethostname()
    if row.status == "stopped":
        state = "stopped"
    elif age > timeout_s:
        state = "silent"
    elif host == here and pid is not None and not pid_running(pid):
        state = "dead"
    else:
        state = "running"
    return WorkerLiveness(getattr(row, "worker_id", ""), host, pid, state, age,
                          getattr(row, "current_run_id", None))


def judge_all(rows: Sequence[Any], **kw) -> list[WorkerLiveness]:
    return [judge(row, **kw) for row in rows]


def worker_status(rows: Sequence[Any], now: datetime | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S,
                  hostname: str | None = None) -> tuple[bool, str]:
    """``(healthy, text)`` for the app's health block, from heartbeat rows (newest first)."""
    now = now or datetime.now(UTC)
    judged = judge_all(rows, now=now, timeout_s=timeout_s, hostname=hostname)
    alive = [w for w in judged if w.alive]
    if alive:
        w = alive[0]
        busy = f", on run {w.current_run_id}" if w.current_run_id else ", idle"
        return True, (f"{len(alive)} worker(s) up; last heartbeat {w.age_s:.0f} s ago "
                      f"({w.host}{busy})")
    if judged:
        w = judged[0]
        if w.state == "dead":
            return False, (f"worker pid {w.pid} is gone (last heartbeat {w.age_s:.0f} s ago); "
                           "start one with `concner worker` (or `concner up`)")
        return False, (f"no worker heartbeat for {w.age_s:.0f} s; start one with "
                       "`concner worker` (or `concner up`)")
    return False, "no worker has ever started; start one with `concner worker` (or `concner up`)"
