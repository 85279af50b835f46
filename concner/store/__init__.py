"""The project store: SQLAlchemy 2.x over SQLite (default) or PostgreSQL (by URL).

``Store(url)`` migrates the schema (Alembic, :func:`upgrade_database`) and offers the
repository methods of :mod:`concner.store.projects`, :mod:`concner.store.pool_stream`,
:mod:`concner.store.runs`, :mod:`concner.store.outcomes`, :mod:`concner.store.workers`,
:mod:`concner.store.shards`,
:mod:`concner.store.translations`, :mod:`concner.store.imports` (and
:mod:`concner.store.admin`);
:mod:`concner.store.snapshot` turns a project into training data at one point in time.
"""

from __future__ import annotations

from concner.errors import ProjectNotFound, StoreConflict  # raised by the store (re-exported)
from concner.store.admin import AdminRepository
from concner.store.consensus import CurrentLabel, current_label
from concner.store.db import StoreBase, make_engine, upgrade_database
from concner.store.imports import ImportBatchInfo, ImportDeletion, ImportRepository
from concner.store.outcomes import OutcomeRepository
from concner.store.pool_stream import PoolRepository
from concner.store.projects import DevSet, ImportReport, ProjectRepository, row_to_sentence
from concner.store.runs import Recovered, RunRepository
from concner.store.shards import ShardRepository
from concner.store.translations import TranslationRepository
from concner.store.workers import WorkerRepository


class Store(ProjectRepository, PoolRepository, ImportRepository, RunRepository,
            OutcomeRepository, WorkerRepository, ShardRepository, TranslationRepository,
            AdminRepository,
            StoreBase):
    """All store operations; each method is one short transaction."""


__all__ = [
    "CurrentLabel", "DevSet", "ImportBatchInfo", "ImportDeletion", "ImportReport", "ProjectNotFound", "Recovered", "Store", "StoreConflict",
    "current_label", "make_engine", "row_to_sentence", "upgrade_database",
]
