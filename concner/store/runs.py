"""Runs, the per-project retrain lock, progress and cancellation (what the runs produced:
:mod:`concner.store.outcomes`; the workers' heartbeats: :mod:`concner.store.workers`).

Methods of :class:`concner.store.Store`. The retrain lock is one row per project
(``retrain_locks``): ``run_id`` + ``heartbeat_at`` name the running retrain, and
``queued_run_id`` the single follow-up run that every request arriving meanwhile
coalesces into. Lock changes are compare-and-set updates inside write transactions
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concner.errors import ConfigError, ProjectNotFound
from concner.store.model_versions import (
    ACTIVE_RUN_STATUSES,
    RUN_KINDS,
    UPDATE_KINDS,
    Project,
    RetrainLock,
    Run,
    utcnow,
)

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Recovered:
    project: str
    lost_run_id: int
    queued_run_id: int


class RunRepository:
    """Store methods for jobs (mixed into :class:`concner.store.Store`)."""

    # -- requests ----------------------------------------------------------------------
    def request_run(self, name: str, *, kind: str = "retrain", reason: str = "on_demand",
                    model_version_id: int | None = None,
                    config: dict | None = None, full: bool = False) -> tuple[int, bool]:
        """Queue a run. Returns ``(run_id, created)``.

        A retrain request while another retrain is already queued returns that queued run
        (``created=False``): requests coalesce into one follow-up run. ``config`` is the
        request of a non-retrain run (e.g. a translate run's backend and language).
        ``full=True`` (retrains only) forces a full retrain instead of an incremental
        update; joining a queued retrain, it makes that one full.
        """
        if kind not in RUN_KINDS:
            raise ConfigError(f"run kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
        if full and kind != "retrain":
            raise ConfigError(f"full=True applies to retrains only, not to a {kind} run")
        with self.write() as s:
            project = self.get_project(name, s)
            if kind != "retrain":
                run = Run(project_id=project.id, kind=kind, reason=reason,
                          model_version_id=model_version_id, config=config)
                s.add(run)
                s.flush()
                return run.id, True
            lock = self._lock(s, project.id)
            if lock.queued_run_id is not None:
                if full:
                    s.execute(sa.update(Run).where(Run.id == lock.queued_run_id)
                              .values(force_full=True))
                return lock.queued_run_id, False
            run = Run(project_id=project.id, kind="retrain", reason=reason, force_full=full)
            s.add(run)
            s.flush()
            lock.queued_run_id = run.id
            return run.id, True

    def request_evaluation(self, name: str, model_version_id: int | None, *,
                           reason: str = "on_demand", config: dict | None = None
                           ) -> tuple[int, bool]:
        """Queue an ``evaluate`` run of one model version (``model_version_id=None``: of
        every stored version), or return the one already queued for the same target
        (``created=False``), in one write transaction: requests coalesce instead of piling
        up one run each."""
        with self.write() as s:
            project = self.get_project(name, s)
            target = (Run.model_version_id.is_(None) if model_version_id is None
                      else Run.model_version_id == model_version_id)
            queued = s.scalar(sa.select(Run.id).where(
                Run.project_id == project.id, Run.kind == "evaluate", Run.status == "queued",
                target).order_by(Run.id).limit(1))
            if queued is not None:
                return queued, False
            run = Run(project_id=project.id, kind="evaluate", reason=reason,
                      model_version_id=model_version_id, config=config)
            s.add(run)
            s.flush()
            return run.id, True

    @staticmethod
    def _lock(s: Session, project_id: int) -> RetrainLock:
        lock = s.scalar(sa.select(RetrainLock).where(
            RetrainLock.project_id == project_id).with_for_update())
        if lock is None:
            lock = RetrainLock(project_id=project_id)
            s.add(lock)
            s.flush()
        return lock

    # -- the retrain lock --------------------------------------------------------------
    def acquire_retrain(self, run_id: int, owner: str) -> bool:
        """Start queued retrain ``run_id`` if no other retrain of its project holds the lock.

        Returns False when the run is no longer queued (cancelled, or already taken) or
        another retrain is running; that one starts the follow-up when it releases.
        """
        with self.write() as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is None or run.status != "queued":
                return False
            lock = self._lock(s, run.project_id)
            if lock.run_id is not None:
                return False
            now = utcnow()
            lock.run_id, lock.owner, lock.acquired_at, lock.heartbeat_at = run_id, owner, now, now
            if lock.queued_run_id == run_id:
                lock.queued_run_id = None
            run.status, run.started_at, run.worker_id = "running", now, owner
            return True

    def heartbeat_retrain(self, run_id: int) -> bool:
        """Refresh the lock heartbeat; False when the lock is no longer held by ``run_id``."""
        with self.write() as s:
            res = s.execute(sa.update(RetrainLock).where(RetrainLock.run_id == run_id).values(
                heartbeat_at=utcnow()))
            return res.rowcount == 1

    def release_retrain(self, run_id: int) -> int | None:
        """Free the lock held by ``run_id``; returns the queued follow-up run id, if any."""
        with self.write() as s:
            lock = s.scalar(sa.select(RetrainLock).where(
                RetrainLock.run_id == run_id).with_for_update())
            if lock is None:
                return None
            lock.run_id = lock.owner = lock.acquired_at = lock.heartbeat_at = None
            return lock.queued_run_id

    def recover_stale(self, stale_seconds: float,
                      dead_owners: Collection[str] = ()) -> list[Recovered]:
        """Fail retrains whose lock heartbeat is older than ``stale_seconds``, or whose
        owner is in ``dead_owners`` (workers known dead: their process on this host is gone,
        so there is no need to wait for the heartbeat to go stale), and queue a follow-up
        for each (unless one is queued already)."""
        cutoff = utcnow() - timedelta(seconds=stale_seconds)
        out = []
        lost_lock = RetrainLock.heartbeat_at < cutoff
        if dead_owners:
            lost_lock = sa.or_(lost_lock, RetrainLock.owner.in_(list(dead_owners)))
        with self.write() as s:
            locks = s.scalars(sa.select(RetrainLock).where(
                RetrainLock.run_id.is_not(None), lost_lock)
                .with_for_update()).all()
            for lock in locks:
                lost = s.get(Run, lock.run_id)
                if lost is not None and lost.status == "running":
                    lost.status, lost.finished_at = "failed", utcnow()
                    lost.error = (f"worker {lost.worker_id} died (its process is gone); the "
                                  "run was re-queued" if lock.owner in dead_owners else
                                  f"worker {lost.worker_id} stopped sending heartbeats (last at "
                                  f"{lock.heartbeat_at.isoformat()}); the run was re-queued")
                if lock.queued_run_id is None:
                    follow = Run(project_id=lock.project_id, kind="retrain", reason="recovery",
                                 retry_of=lock.run_id,
                                 force_full=bool(lost is not None and lost.force_full))
                    s.add(follow)
                    s.flush()
                    lock.queued_run_id = follow.id
                else:  # the run queued meanwhile takes the lost one over (and resumes it)
                    queued = s.get(Run, lock.queued_run_id, with_for_update=True)
                    if queued is not None and queued.retry_of is None:
                        queued.retry_of = lock.run_id
                        if lost is not None and lost.force_full:
                            queued.force_full = True
                name = s.scalar(sa.select(Project.name).where(Project.id == lock.project_id))
                out.append(Recovered(name, lock.run_id, lock.queued_run_id))
                lock.run_id = lock.owner = lock.acquired_at = lock.heartbeat_at = None
        return out

    def recover_orphaned_jobs(self, lost_owners: Collection[str]
                              ) -> list[tuple[str, int, str, int | None]]:
        """Predict, evaluate and translate runs still ``running`` under a worker in
        ``lost_owners`` (dead, silent or stopped: nobody will finish them) are failed and
        queued again as a new run each (``retry_of`` names the lost one). Returns
        ``(project, new run id, kind, model_version_id)`` to enqueue."""
        if not lost_owners:
            return []
        out = []
        with self.write() as s:
            lost = s.scalars(sa.select(Run).where(
                Run.kind != "retrain", Run.status == "running",
                Run.worker_id.in_(list(lost_owners))).with_for_update()).all()
            for run in lost:
                again = Run(project_id=run.project_id, kind=run.kind, reason="recovery",
                            retry_of=run.id, config=run.config,
                            model_version_id=run.model_version_id)
                s.add(again)
                s.flush()
                run.status, run.finished_at = "failed", utcnow()
                run.error = (f"worker {run.worker_id} died while running it; re-queued as "
                             f"run {again.id}")
                name = s.scalar(sa.select(Project.name).where(Project.id == run.project_id))
                out.append((name, again.id, run.kind, run.model_version_id))
        return out

    def pending_retrains(self, older_than: float = 0.0) -> list[tuple[str, int]]:
        """``(project, run_id)`` of queued follow-ups, requested more than ``older_than``
        seconds ago, whose project holds no lock (e.g. their queue message was lost, or the
        worker stopped before starting them); enqueueing them again is harmless."""
        cutoff = utcnow() - timedelta(seconds=older_than)
        with self.read() as s:
            return list(s.execute(sa.select(Project.name, RetrainLock.queued_run_id).join(
                RetrainLock, RetrainLock.project_id == Project.id).join(
                Run, Run.id == RetrainLock.queued_run_id).where(
                RetrainLock.run_id.is_(None), Run.requested_at <= cutoff)).tuples())

    def stale_queued_jobs(self, older_than: float = 0.0
                          ) -> list[tuple[str, int, str, int | None]]:
        """``(project, run_id, kind, model_version_id)`` of queued predict, evaluate and
        translate runs requested more than ``older_than`` seconds ago (their queue message
        may be lost, e.g. the worker stopped first). Enqueueing them again is harmless: a
        run that is no longer queued is skipped by the job."""
        cutoff = utcnow() - timedelta(seconds=older_than)
        with self.read() as s:
            return list(s.execute(sa.select(Project.name, Run.id, Run.kind,
                                            Run.model_version_id).join(
                Project, Project.id == Run.project_id).where(
                Run.kind != "retrain", Run.status == "queued", Run.requested_at <= cutoff)
                .order_by(Run.id)).tuples())

    def lock_state(self, name: str) -> RetrainLock:
        with self.read() as s:
            return self._lock_ro(s, self.get_project(name, s).id)

    @staticmethod
    def _lock_ro(s: Session, project_id: int) -> RetrainLock:
        return s.scalar(sa.select(RetrainLock).where(RetrainLock.project_id == project_id))

    # -- run lifecycle -----------------------------------------------------------------
    def start_run(self, run_id: int, owner: str) -> bool:
        """Mark a queued non-retrain run running; False when it was cancelled meanwhile."""
        with self.write() as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is None or run.status != "queued":
                return False
            run.status, run.started_at, run.worker_id = "running", utcnow(), owner
            return True

    def record_snapshot(self, run_id: int, *, label_counts: dict, config: dict,
                        seed: int) -> None:
        with self.write() as s:
            run = s.get(Run, run_id)
            run.label_counts, run.config, run.seed = label_counts, config, seed

    def record_update(self, run_id: int, *, kind: str, reason: str, new: int, replay: int,
                      depth: int, base_model_version_id: int | None,
                      trained_on: Mapping[int, int]) -> None:
        """Record a retrain's plan (see :mod:`concner.jobs.incremental`): full or incremental,
        why, what it trained on, and ``trained_on`` (sentence id -> label version of every
        labelled sentence its model will have learnt from)."""
        if kind not in UPDATE_KINDS:
            raise ConfigError(f"update kind must be one of {', '.join(UPDATE_KINDS)}, "
                              f"got {kind!r}")
        with self.write() as s:
            run = s.get(Run, run_id)
            run.update_kind, run.update_reason = kind, reason
            run.n_new_labels, run.n_replay, run.incremental_depth = new, replay, depth
            run.base_model_version_id = base_model_version_id
            run.trained_on = {str(k): int(v) for k, v in sorted(trained_on.items())}

    def trained_on(self, run_id: int) -> dict[int, int] | None:
        """``{sentence id: label version}`` a retrain's model learnt from, or None (a run
        from before incremental updates, or one that never read its snapshot)."""
        with self.read() as s:
            value = s.scalar(sa.select(Run.trained_on).where(Run.id == run_id))
        return None if value is None else {int(k): int(v) for k, v in value.items()}

    def project_name(self, project_id: int) -> str:
        """The name of the project with row id ``project_id`` (runs name their project by id)."""
        with self.read() as s:
            name = s.scalar(sa.select(Project.name).where(Project.id == project_id))
        if name is None:
            raise ProjectNotFound(f"no project has id {project_id}; it was deleted")
        return name

    def merge_run_config(self, run_id: int, fields: Mapping[str, Any]) -> None:
        """Add ``fields`` to run ``run_id``'s config (a key already there is replaced): what
        the run was asked to do, and what a sharded run pinned for its shards
        (:func:`concner.jobs.shards.hand_out`)."""
        with self.write() as s:
            run = s.get(Run, run_id)
            run.config = {**(run.config or {}), **fields}

    def set_run_model_version(self, run_id: int, model_version_id: int) -> None:
        """Name the model version a running run works with (a sharded run's, so the worker
        that ends it records it: :func:`concner.jobs.shards.complete_if_last`)."""
        with self.write() as s:
            s.get(Run, run_id).model_version_id = model_version_id

    def update_progress(self, run_id: int, progress: dict[str, Any]) -> bool:
        """Write progress; returns True when cancellation was requested."""
        with self.write() as s:
            run = s.get(Run, run_id)
            run.progress = progress
            return bool(run.cancel_requested)

    def cancel_requested(self, run_id: int) -> bool:
        with self.read() as s:
            return bool(s.scalar(sa.select(Run.cancel_requested).where(Run.id == run_id)))

    def finish_run(self, run_id: int, status: str, error: str | None = None,
                   model_version_id: int | None = None) -> None:
        if status not in TERMINAL:
            raise ConfigError(f"a finished run is one of {', '.join(TERMINAL)}, got {status!r}")
        with self.write() as s:
            run = s.get(Run, run_id)
            run.status, run.finished_at, run.error = status, utcnow(), error
            if model_version_id is not None:
                run.model_version_id = model_version_id

    def cancel_run(self, run_id: int) -> str:
        """Cancel: a queued run is cancelled at once, a running one is asked to stop (its
        progress callback raises ``JobCancelled``). Returns the run's status afterwards."""
        with self.write() as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is None:
                raise ConfigError(f"there is no run {run_id}")
            if run.status == "queued":
                run.status, run.finished_at, run.error = "cancelled", utcnow(), "cancelled by user"
                s.execute(sa.update(RetrainLock).where(RetrainLock.queued_run_id == run_id)
                          .values(queued_run_id=None))
            elif run.status == "running":
                run.cancel_requested = True
            return run.status

    def get_run(self, run_id: int) -> Run:
        with self.read() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise ConfigError(f"there is no run {run_id}")
            return run

    def runs(self, name: str, *, kind: str | None = None, limit: int = 100) -> list[Run]:
        with self.read() as s:
            q = sa.select(Run).where(Run.project_id == self.get_project(name, s).id)
            if kind is not None:
                q = q.where(Run.kind == kind)
            return list(s.scalars(q.order_by(Run.id.desc()).limit(limit)))

    def run_label_counts(self, name: str) -> dict[int, dict]:
        """``{run id: label_counts}`` of the project's runs that recorded a snapshot (the
        counts each run saw, with ``target_by_lang``: labelled target sentences per
        language outside dev), for the F1-against-labels curve."""
        with self.read() as s:
            rows = s.execute(sa.select(Run.id, Run.label_counts).where(
                Run.project_id == self.get_project(name, s).id,
                Run.label_counts.is_not(None))).all()
        return {run_id: dict(counts) for run_id, counts in rows}

    def label_authors(self, sentence_ids: Sequence[int]) -> dict[int, list[str]]:
        """``{sentence id: authors}`` of each labelled sentence's current label: everyone
        whose latest version counts (people; the import only when no person labelled it,
        as in :mod:`concner.store.consensus`), in the order they answered."""
        from concner.store.model_versions import Annotation

        ids = sorted(set(sentence_ids))
        versions: dict[int, list] = {}
        with self.read() as s:
            for i in range(0, len(ids), 500):
                for sid, author, origin, ann_id in s.execute(sa.select(
                        Annotation.sentence_id, Annotation.author, Annotation.origin,
                        Annotation.id).where(Annotation.sentence_id.in_(ids[i:i + 500]))):
                    versions.setdefault(sid, []).append((ann_id, author, origin))
        out = {}
        for sid, rows in versions.items():
            human = [r for r in rows if r[2] != "import"]
            latest: dict[str, int] = {}
            for ann_id, author, _origin in sorted(human or rows):
                latest[author] = ann_id
            out[sid] = sorted(latest, key=latest.get)
        return out

    def last_snapshot_counts(self, name: str) -> dict | None:
        """The label counts (``Snapshot.label_counts``) the latest retrain that took a
        snapshot saw (None: none did)."""
        with self.read() as s:
            counts = s.scalars(sa.select(Run.label_counts).where(
                Run.project_id == self.get_project(name, s).id, Run.kind == "retrain",
                Run.label_counts.is_not(None)).order_by(Run.id.desc()).limit(1)).first()
        return None if counts is None else dict(counts)

    def retrain_awaiting_snapshot(self, name: str) -> int | None:
        """A queued or running retrain that has not recorded its snapshot yet (it will see
        every label stored so far), or None."""
        with self.read() as s:
            return s.scalars(sa.select(Run.id).where(
                Run.project_id == self.get_project(name, s).id, Run.kind == "retrain",
                Run.status.in_(ACTIVE_RUN_STATUSES), Run.label_counts.is_(None))
                .order_by(Run.id.desc()).limit(1)).first()
