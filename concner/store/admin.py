"""Destructive project administration: deleting a project and everything it owns.

Methods of :class:`concner.store.Store`. The checkpoint files of the deleted model
versions are the registry's business: call :meth:`concner.jobs.registry.ModelRegistry.
delete_project`, which deletes the rows through here and then the files.
"""

from __future__ import annotations

import sqlalchemy as sa

from concner.errors import StoreConflict
from concner.store.model_versions import (
    ACTIVE_RUN_STATUSES,
    Annotation,
    ImportBatch,
    Metric,
    ModelVersion,
    PredictionRow,
    Project,
    RetrainLock,
    Run,
    SentenceRow,
    Shard,
    ShardCompletion,
    SyncState,
    TranslationLink,
)


class AdminRepository:
    """Store methods for admin actions (mixed into :class:`concner.store.Store`)."""

    def delete_project(self, name: str) -> dict[str, int]:
        """Delete project ``name`` and all its rows in ONE transaction; returns the number
        of rows deleted per table. Refuses (:class:`StoreConflict`) while one of its runs is
        queued or running: cancel those first, or the worker would write to a project that
        no longer exists."""
        with self.write() as s:
            project = self.get_project(name, s)
            pid = project.id
            busy = s.scalars(sa.select(Run.id).where(
                Run.project_id == pid, Run.status.in_(ACTIVE_RUN_STATUSES))).all()
            if busy:
                raise StoreConflict(
                    f"project {name!r} has queued or running runs ({', '.join(map(str, busy))}); "
                    "cancel them (Training page, or concner project cancel) and try again")
            runs = sa.select(Run.id).where(Run.project_id == pid).scalar_subquery()
            versions = sa.select(ModelVersion.id).where(
                ModelVersion.project_id == pid).scalar_subquery()
            sentences = sa.select(SentenceRow.id).where(
                SentenceRow.project_id == pid).scalar_subquery()
            # children before parents, so no foreign key without ON DELETE blocks a step
            steps = [
                ("retrain_locks", sa.delete(RetrainLock).where(RetrainLock.project_id == pid)),
                ("metrics", sa.delete(Metric).where(sa.or_(Metric.run_id.in_(runs),
                                                           Metric.model_version_id.in_(versions)))),
                ("predictions", sa.delete(PredictionRow).where(sa.or_(
                    PredictionRow.model_version_id.in_(versions),
                    PredictionRow.sentence_id.in_(sentences)))),
                ("model_versions", sa.delete(ModelVersion).where(ModelVersion.project_id == pid)),
                ("shards", sa.delete(Shard).where(Shard.run_id.in_(runs))),
                ("shard_completions", sa.delete(ShardCompletion).where(
                    ShardCompletion.run_id.in_(runs))),
                ("runs", sa.delete(Run).where(Run.project_id == pid)),
                ("translation_links", sa.delete(TranslationLink).where(
                    TranslationLink.project_id == pid)),
                ("annotations", sa.delete(Annotation).where(Annotation.sentence_id.in_(sentences))),
                ("sentences", sa.delete(SentenceRow).where(SentenceRow.project_id == pid)),
                ("import_batches", sa.delete(ImportBatch).where(ImportBatch.project_id == pid)),
                ("sync_state", sa.delete(SyncState).where(SyncState.project_id == pid)),
                ("projects", sa.delete(Project).where(Project.id == pid)),
            ]
            no_sync = {"synchronize_session": False}
            return {table: s.execute(stmt, execution_options=no_sync).rowcount
                    for table, stmt in steps}
