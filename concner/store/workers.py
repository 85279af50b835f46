"""Worker heartbeats: each worker's row (host, pid, status, current run, last seen).

Methods of :class:`concner.store.Store`; :mod:`concner.jobs.liveness` judges the rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from concner.store.model_versions import WorkerHeartbeat, utcnow


class WorkerRepository:
    """Store methods for worker heartbeats (mixed into :class:`concner.store.Store`)."""

    # -- workers -----------------------------------------------------------------------
    def beat_worker(self, worker_id: str, *, host: str, pid: int, status: str = "running",
                    current_run_id: int | None = None) -> None:
        with self.write() as s:
            row = s.get(WorkerHeartbeat, worker_id)
            if row is None:
                row = WorkerHeartbeat(worker_id=worker_id, host=host, pid=pid)
                s.add(row)
            row.status, row.current_run_id, row.last_seen = status, current_run_id, utcnow()

    def workers(self, *, seen_within: float | None = None) -> list[WorkerHeartbeat]:
        with self.read() as s:
            q = sa.select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen.desc())
            if seen_within is not None:
                since: datetime = utcnow() - timedelta(seconds=seen_within)
                q = q.where(WorkerHeartbeat.last_seen >= since)
            return list(s.scalars(q))
