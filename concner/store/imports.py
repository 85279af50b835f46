"""Import batches: list the imports of a project, and undo one (its sentences go).

Every :meth:`~concner.store.projects.ProjectRepository.import_sentences` call records one
:class:`~concner.store.model_versions.ImportBatch` (file name, role, split, language, count) and
stamps its sentences with it. Undoing an import deletes, in ONE transaction, the batch's
sentences, the translation sentences linked to them (a translation of a sentence that is
gone serves nothing), and everything that hangs off those sentences: label versions
(imported tags and corrections), translation links and predictions. Sentences stored
before schema 0006 belong to no batch and cannot be undone this way.

Methods of :class:`concner.store.Store` (a mixin over :class:`concner.store.db.StoreBase`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concner.errors import ImportBatchNotFound, StoreConflict
from concner.store.model_versions import (
    Annotation,
    ImportBatch,
    PredictionRow,
    Run,
    SentenceRow,
    TranslationLink,
)

_CHUNK = 500


@dataclass
class ImportBatchInfo:
    """One import as the Data page and ``concner project imports`` list it; ``n_left`` is
    how many of its ``n_sentences`` are still stored."""

    id: int
    source_name: str
    role: str
    split: str
    lang: str | None
    n_sentences: int
    n_left: int
    created_at: datetime

    def describe(self) -> str:
        """``import 3: en-train.tsv (source/train, en, 24 sentences, 2026-12-07 05:40)``."""
        left = "" if self.n_left == self.n_sentences else f", {self.n_left} left"
        return (f"import {self.id}: {self.source_name} ({self.role}/{self.split}"
                f"{', ' + self.lang if self.lang else ''}, {self.n_sentences} sentences{left}, "
                f"{self.created_at:%Y-%m-%d %H:%M} UTC)")


@dataclass
class ImportDeletion:
    """What undoing one import deletes (a preview) or deleted: row counts per kind."""

    batch: ImportBatchInfo
    sentences: int = 0
    labelled: int = 0
    annotations: int = 0
    translations: int = 0
    translation_links: int = 0
    predictions: int = 0
    #: dev languages whose gold dev set loses sentences (every version's dev F1 changes)
    dev_langs: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``24 sentences (24 labelled), 30 label versions, 12 translations, ...``."""
        parts = [f"{self.sentences} sentences ({self.labelled} labelled)",
                 f"{self.annotations} label versions (imported tags and corrections)",
                 f"{self.translations} translations of them",
                 f"{self.translation_links} translation links",
                 f"{self.predictions} predictions"]
        text = ", ".join(parts)
        if self.dev_langs:
            text += f"; the {', '.join(self.dev_langs)} dev set changes"
        return text


class ImportRepository:
    """Store methods for import batches (mixed into :class:`concner.store.Store`)."""

    def import_batches(self, name: str) -> list[ImportBatchInfo]:
        """The project's imports, newest first, with how many of their sentences are left."""
        with self.read() as s:
            project = self.get_project(name, s)
            left = dict(s.execute(
                sa.select(SentenceRow.import_batch_id, sa.func.count()).where(
                    SentenceRow.project_id == project.id,
                    SentenceRow.import_batch_id.is_not(None)).group_by(
                    SentenceRow.import_batch_id)).all())
            batches = s.scalars(sa.select(ImportBatch).where(
                ImportBatch.project_id == project.id).order_by(ImportBatch.id.desc()))
            return [_info(b, left.get(b.id, 0)) for b in batches]

    def preview_import_deletion(self, name: str, batch_id: int) -> ImportDeletion:
        """What :meth:`delete_import` would delete, without deleting anything."""
        with self.read() as s:
            batch, n_left = self._batch(s, name, batch_id)
            return self._count(s, _info(batch, n_left), self._doomed(s, batch))

    def delete_import(self, name: str, batch_id: int) -> ImportDeletion:
        """Delete import ``batch_id`` of project ``name`` (see the module doc) in one
        transaction; returns what went. Refuses (:class:`StoreConflict`) while a run of the
        project is running: it may be writing predictions or translations of these
        sentences."""
        with self.write() as s:
            batch, n_left = self._batch(s, name, batch_id)
            busy = s.scalars(sa.select(Run.id).where(Run.project_id == batch.project_id,
                                                     Run.status == "running")).all()
            if busy:
                raise StoreConflict(
                    f"run {', '.join(map(str, busy))} of project {name!r} is running; wait "
                    "until it finishes or cancel it (Training page, or concner project "
                    "cancel), then delete the import again")
            doomed = self._doomed(s, batch)
            report = self._count(s, _info(batch, n_left), doomed)
            no_sync = {"synchronize_session": False}
            for i in range(0, len(doomed), _CHUNK):
                ids = doomed[i:i + _CHUNK]
                for stmt in (
                        sa.delete(PredictionRow).where(PredictionRow.sentence_id.in_(ids)),
                        sa.delete(Annotation).where(Annotation.sentence_id.in_(ids)),
                        sa.delete(TranslationLink).where(sa.or_(
                            TranslationLink.source_sentence_id.in_(ids),
                            TranslationLink.translation_sentence_id.in_(ids))),
                        sa.delete(SentenceRow).where(SentenceRow.id.in_(ids))):
                    s.execute(stmt, execution_options=no_sync)
            # the batch, and any other import that lost its last sentence here
            s.execute(sa.delete(ImportBatch).where(
                ImportBatch.project_id == batch.project_id,
                ~sa.exists().where(SentenceRow.import_batch_id == ImportBatch.id)),
                execution_options=no_sync)
            s.execute(sa.delete(ImportBatch).where(ImportBatch.id == batch.id),
                      execution_options=no_sync)
        return report

    # -- helpers -------------------------------------------------------------------------
    def _batch(self, s: Session, name: str, batch_id: int) -> tuple[ImportBatch, int]:
        project = self.get_project(name, s)
        batch = s.scalar(sa.select(ImportBatch).where(ImportBatch.id == batch_id,
                                                      ImportBatch.project_id == project.id))
        if batch is None:
            known = s.scalars(sa.select(ImportBatch.id).where(
                ImportBatch.project_id == project.id).order_by(ImportBatch.id)).all()
            raise ImportBatchNotFound(
                f"project {name!r} has no import {batch_id}; its imports: "
                f"{', '.join(map(str, known)) or 'none'} (concner project imports {name})")
        n_left = s.scalar(sa.select(sa.func.count()).where(
            SentenceRow.import_batch_id == batch.id)) or 0
        return batch, n_left

    @staticmethod
    def _doomed(s: Session, batch: ImportBatch) -> list[int]:
        """Ids of the batch's sentences, then of the translations linked to them."""
        own = list(s.scalars(sa.select(SentenceRow.id).where(
            SentenceRow.import_batch_id == batch.id).order_by(SentenceRow.id)))
        linked: set[int] = set()
        for i in range(0, len(own), _CHUNK):
            linked.update(s.scalars(sa.select(TranslationLink.translation_sentence_id).where(
                TranslationLink.source_sentence_id.in_(own[i:i + _CHUNK]),
                TranslationLink.translation_sentence_id.is_not(None))))
        return own + sorted(linked - set(own))

    @staticmethod
    def _count(s: Session, info: ImportBatchInfo, doomed: list[int]) -> ImportDeletion:
        report = ImportDeletion(info, sentences=info.n_left,
                                translations=len(doomed) - info.n_left)
        own = set(doomed[:info.n_left])
        labelled: set[int] = set()
        links: set[int] = set()
        for i in range(0, len(doomed), _CHUNK):
            ids = doomed[i:i + _CHUNK]
            for sid, n in s.execute(sa.select(Annotation.sentence_id, sa.func.count()).where(
                    Annotation.sentence_id.in_(ids)).group_by(Annotation.sentence_id)):
                report.annotations += n
                if sid in own:
                    labelled.add(sid)
            report.predictions += s.scalar(sa.select(sa.func.count()).where(
                PredictionRow.sentence_id.in_(ids))) or 0
            links.update(s.scalars(sa.select(TranslationLink.id).where(sa.or_(
                TranslationLink.source_sentence_id.in_(ids),
                TranslationLink.translation_sentence_id.in_(ids)))))
        report.labelled, report.translation_links = len(labelled), len(links)
        if info.split == "dev" and info.n_left:
            report.dev_langs = sorted(set(s.scalars(sa.select(SentenceRow.lang).where(
                SentenceRow.import_batch_id == info.id).distinct())))
        return report


def _info(batch: ImportBatch, n_left: int) -> ImportBatchInfo:
    return ImportBatchInfo(batch.id, batch.source_name, batch.role, batch.split, batch.lang,
                           batch.n_sentences, n_left, batch.created_at)
