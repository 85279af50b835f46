"""What runs produce: per-language dev metrics and model versions (which one is active,
pinned, promoted or deleted).

Methods of :class:`concner.store.Store`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from concner.errors import ConfigError
from concner.store.model_versions import Metric, ModelVersion, Project, Run, utcnow


class OutcomeRepository:
    """Store methods for metrics and model versions (mixed into :class:`concner.store.Store`)."""

    # -- metrics -----------------------------------------------------------------------
    def add_metrics(self, run_id: int, split: str, reports: dict[str, dict],
                    model_version_id: int | None = None) -> None:
        """One row per language from ``evaluate()`` reports (``lang -> report``)."""
        with self.write() as s:
            counts = (s.get(Run, run_id).label_counts or {})
            for lang, rep in sorted(reports.items()):
                s.add(Metric(run_id=run_id, model_version_id=model_version_id, language=lang,
                             split=split, precision=float(rep["precision"]),
                             recall=float(rep["recall"]), f1=float(rep["f1"]),
                             support=int(rep["support"]), per_label=rep.get("per_label", {}),
                             n_source=int(counts.get("source", 0)),
                             n_translated=int(counts.get("translated", 0)),
                             n_target=int(counts.get("target", 0))))

    def metrics(self, name: str, *, run_id: int | None = None) -> list[Metric]:
        with self.read() as s:
            q = sa.select(Metric).join(Run, Metric.run_id == Run.id).where(
                Run.project_id == self.get_project(name, s).id)
            if run_id is not None:
                q = q.where(Metric.run_id == run_id)
            return list(s.scalars(q.order_by(Metric.run_id, Metric.language)))

    # -- model versions ----------------------------------------------------------------
    def add_model_version(self, name: str, *, run_id: int | None, path: str,
                          mean_f1: float | None, version: int) -> ModelVersion:
        with self.write() as s:
            mv = ModelVersion(project_id=self.get_project(name, s).id, run_id=run_id,
                              version=version, path=path, mean_f1=mean_f1)
            s.add(mv)
        return mv

    def set_model_mean_f1(self, model_version_id: int, mean_f1: float | None) -> None:
        """Record a version's mean dev F1 from a later evaluation (on the current dev set)."""
        with self.write() as s:
            s.execute(sa.update(ModelVersion).where(ModelVersion.id == model_version_id)
                      .values(mean_f1=mean_f1))

    def next_model_version(self, name: str) -> int:
        with self.read() as s:
            top = s.scalar(sa.select(sa.func.max(ModelVersion.version)).where(
                ModelVersion.project_id == self.get_project(name, s).id))
        return (top or 0) + 1

    def activate_model_version(self, model_version_id: int, *, pin: bool = False) -> None:
        """Make one version the active one (and mark it promoted) in one transaction;
        ``pin=True`` pins it instead of marking it promoted (``projects.pinned_version_id``:
        promotion never replaces a pinned version)."""
        with self.write() as s:
            mv = s.get(ModelVersion, model_version_id, with_for_update=True)
            if mv is None:
                raise ConfigError(f"there is no model version with id {model_version_id}")
            s.execute(sa.update(ModelVersion).where(ModelVersion.project_id == mv.project_id,
                                                    ModelVersion.active.is_(True))
                      .values(active=False))
            s.flush()
            mv.active = True
            if pin:  # the user's choice, not the rule's: ``promoted`` keeps the rule's verdict
                s.get(Project, mv.project_id).pinned_version_id = mv.id
            else:
                mv.promoted = True

    def unpin_model_version(self, name: str) -> int | None:
        """Clear project ``name``'s pin; returns the id of the version that was pinned."""
        with self.write() as s:
            project = self.get_project(name, s)
            was, project.pinned_version_id = project.pinned_version_id, None
            return was

    def active_model_version(self, name: str) -> ModelVersion | None:
        with self.read() as s:
            return s.scalar(sa.select(ModelVersion).where(
                ModelVersion.project_id == self.get_project(name, s).id,
                ModelVersion.active.is_(True)))

    def model_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        with self.read() as s:
            q = sa.select(ModelVersion).where(
                ModelVersion.project_id == self.get_project(name, s).id)
            if not include_deleted:
                q = q.where(ModelVersion.deleted_at.is_(None))
            return list(s.scalars(q.order_by(ModelVersion.version)))

    def get_model_version(self, model_version_id: int) -> ModelVersion:
        with self.read() as s:
            mv = s.get(ModelVersion, model_version_id)
        if mv is None:
            raise ConfigError(f"there is no model version with id {model_version_id}")
        return mv

    def mark_model_deleted(self, model_version_ids: Sequence[int]) -> None:
        with self.write() as s:
            s.execute(sa.update(ModelVersion).where(ModelVersion.id.in_(list(model_version_ids)),
                                                    ModelVersion.active.is_(False))
                      .values(deleted_at=utcnow()))
