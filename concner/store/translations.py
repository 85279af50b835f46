"""Machine translations made by a ``translate`` run: which sources still need one, and the
one-transaction import of the projected pairs.

Methods of :class:`concner.store.Store`. A usable pair (``ok``/``repaired``) becomes a
``role="translation"`` sentence in the target language, its projected tags an annotation
(author ``translate:<backend>``) and a :class:`TranslationLink` with the status and reason.
A failed pair keeps only the link (no sentence, ``translation_sentence_id`` NULL): the
reason stays visible, and nothing of it can reach training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concner.errors import ConfigError
from concner.sentence import Sentence
from concner.store.model_versions import Annotation, SentenceRow, TranslationLink, utcnow
from concner.store.projects import ImportReport, row_to_sentence

USABLE = ("ok", "repaired")


class TranslationRepository:
    """Store methods for translate runs (mixed into :class:`concner.store.Store`)."""

    def untranslated_sources(self, name: str, target_lang: str, backend: str, *,
                             all_labelled: bool = False) -> list[Sentence]:
        """Labelled source sentences (train/pool, current labels) without a usable
        translation into ``target_lang``, and without a failed one from ``backend`` (the
        same engine would fail the same way; another backend may try). ``all_labelled``:
        every labelled source, in import order (a user's translation file lists them all)."""
        with self.read() as s:
            project = self.get_project(name, s)
            self._check_target(project, target_lang)
            done = set() if all_labelled else self._translated_source_ids(
                s, project.id, target_lang, backend)
            rows = [r for r in s.scalars(sa.select(SentenceRow).where(
                SentenceRow.project_id == project.id, SentenceRow.role == "source",
                SentenceRow.split != "dev").order_by(SentenceRow.id)) if r.id not in done]
            current = self.current_labels(s, [r.id for r in rows])
        return [row_to_sentence(r, current[r.id].tags) for r in rows if r.id in current]

    @staticmethod
    def _check_target(project, target_lang: str) -> None:
        if target_lang not in project.target_langs:
            raise ConfigError(f"project {project.name!r} translates into "
                              f"{', '.join(project.target_langs)}, not {target_lang!r}; add "
                              "the language to the project or pick one of those")

    @staticmethod
    def _translated_source_ids(s: Session, project_id: int, lang: str, backend: str
                               ) -> set[int]:
        """Sources with a usable link into ``lang``, or a failed one from ``backend``.
        Links imported from files before links had a language get it from their sentence."""
        link_lang = sa.func.coalesce(TranslationLink.lang, SentenceRow.lang)
        q = sa.select(TranslationLink.source_sentence_id).outerjoin(
            SentenceRow, SentenceRow.id == TranslationLink.translation_sentence_id).where(
            TranslationLink.project_id == project_id, link_lang == lang,
            sa.or_(TranslationLink.status.in_(USABLE), TranslationLink.backend == backend))
        return set(s.scalars(q))

    def usable_translations_by_lang(self, name: str) -> dict[str, int]:
        """``{target language: number of source sentences with a usable (ok/repaired)
        translation into it}`` (languages without one are left out)."""
        with self.read() as s:
            project = self.get_project(name, s)
            link_lang = sa.func.coalesce(TranslationLink.lang, SentenceRow.lang)
            rows = s.execute(sa.select(
                link_lang, sa.func.count(sa.distinct(TranslationLink.source_sentence_id)))
                .outerjoin(SentenceRow, SentenceRow.id == TranslationLink.translation_sentence_id)
                .where(TranslationLink.project_id == project.id,
                       TranslationLink.status.in_(USABLE)).group_by(link_lang)).all()
        return {lang: int(n) for lang, n in rows if lang}

    def import_translation_pairs(self, name: str, pairs: Sequence[Any], *, backend: str,
                                 target_lang: str) -> ImportReport:
        """Import :class:`~concner.translation.base.ProjectedPair` results of ``backend`` in
        ONE transaction. Sources that got a translation meanwhile (another run) are skipped,
        so running the same request twice adds nothing."""
        report = ImportReport()
        with self.write() as s:
            project = self.get_project(name, s)
            self._check_target(project, target_lang)
            done = self._translated_source_ids(s, project.id, target_lang, backend)
            wanted = sorted({str(p.source.id) for p in pairs})
            source_ids = self._source_ids(s, project.id, wanted)
            taken = set(s.scalars(sa.select(SentenceRow.external_id).where(
                SentenceRow.project_id == project.id,
                SentenceRow.external_id.in_([self._tr_id(x, target_lang, backend)
                                             for x in wanted]))))
            now = utcnow()
            for pair in pairs:
                src = source_ids.get(str(pair.source.id))
                if src is None:
                    raise ConfigError(f"translation of {pair.source.id!r}: no such source "
                                      f"sentence in project {name!r}")
                if src in done:
                    continue
                done.add(src)
                status = pair.status.value if hasattr(pair.status, "value") else str(pair.status)
                row = None
                if pair.usable:
                    row = self._add_translation(s, project.id, pair.translated, pair.source.id,
                                                target_lang, backend, taken, now)
                    report.sentences += 1
                    report.labelled += pair.translated.tags is not None
                s.add(TranslationLink(project_id=project.id, source_sentence_id=src,
                                      translation_sentence_id=None if row is None else row.id,
                                      lang=target_lang, backend=backend, status=status,
                                      reason=pair.reason or None, created_at=now))
                report.links[status] += 1
        return report

    @staticmethod
    def _tr_id(source_id: str, lang: str, backend: str) -> str:
        return f"{source_id}@{lang}:{backend}"

    def _add_translation(self, s: Session, project_id: int, sent: Sentence, source_id: str,
                         lang: str, backend: str, taken: set[str], now) -> SentenceRow:
        if sent.lang != lang:
            raise ConfigError(f"the {backend} backend returned a {sent.lang!r} sentence for "
                              f"target language {lang!r} (source {source_id!r})")
        ext = base = self._tr_id(str(source_id), lang, backend)
        n = 1
        while ext in taken:  # a user import already uses the id
            n += 1
            ext = f"{base}#{n}"
        taken.add(ext)
        meta = {k: v for k, v in sent.meta.items() if k != "db_id"}
        row = SentenceRow(project_id=project_id, external_id=ext, lang=lang, role="translation",
                          split="train", tokens=list(sent.tokens),
                          offsets=[list(o) for o in sent.offsets], text=sent.text, meta=meta,
                          created_at=now)
        s.add(row)
        s.flush()
        if sent.tags is not None:
            s.add(Annotation(sentence_id=row.id, tags=list(sent.tags),
                             author=f"translate:{backend}", origin="import", created_at=now))
        return row
