"""Projects, sentences, annotations, translation links, predictions and sync state.

Methods of :class:`concner.store.Store` (a mixin over :class:`concner.store.db.StoreBase`).
Imports are validated completely before the first row is written and then written in
one transaction, so a bad file imports nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concner.errors import (
    ConfigError,
    DataFormatError,
    LabelSchemaError,
    ProjectNotFound,
    StoreConflict,
)
from concner.labels import LabelSchema
from concner.sentence import Sentence
from concner.store.consensus import CurrentLabel, current_label
from concner.store.model_versions import (
    LINK_STATUSES,
    ORIGINS,
    ROLES,
    SPLITS,
    Annotation,
    ImportBatch,
    PredictionRow,
    Project,
    RetrainLock,
    SentenceRow,
    SyncState,
    TranslationLink,
    utcnow,
)

_CHUNK = 500


@dataclass
class ImportReport:
    sentences: int = 0
    labelled: int = 0
    links: Counter = field(default_factory=Counter)
    #: the import batch the sentences were stamped with (None when nothing was imported)
    batch_id: int | None = None

    def summary(self) -> str:
        links = ", ".join(f"{k} {v}" for k, v in sorted(self.links.items()))
        return (f"{self.sentences} sentences, {self.labelled} labelled"
                + (f", translation links: {links}" if links else ""))


@dataclass(frozen=True)
class DevSet:
    """The gold target dev sentences of a project, as a whole: ``counts`` per language and
    a ``fingerprint`` that changes whenever a dev sentence is added, deleted or relabelled
    (so a metric computed on an older dev set is recognisable)."""

    counts: dict[str, int]
    fingerprint: str

    @property
    def empty(self) -> bool:
        return not any(self.counts.values())


def row_to_sentence(row: SentenceRow, tags: Sequence[str] | None = None,
                    extra_meta: dict | None = None) -> Sentence:
    """The shared :class:`Sentence` for a stored row (``meta["db_id"]`` holds the row id)."""
    meta = {**(row.meta or {}), "db_id": row.id, "role": row.role, "split": row.split,
            **(extra_meta or {})}
    return Sentence(row.external_id, row.lang, list(row.tokens),
                    None if tags is None else list(tags), row.text,
                    [tuple(o) for o in row.offsets], meta)


def _one_lang(sentences: Sequence[Sentence]) -> str | None:
    """The language of an import's sentences, or None when they mix languages."""
    langs = {x.lang for x in sentences}
    return langs.pop() if len(langs) == 1 else None


def _where(sent: Sentence) -> dict:
    return {"path": sent.meta.get("source_file"), "line": sent.meta.get("line")}


class ProjectRepository:
    """Store methods for project data (mixed into :class:`concner.store.Store`)."""

    # -- projects ----------------------------------------------------------------------
    def create_project(self, name: str, *, source_lang: str, target_langs: Sequence[str],
                       entity_types: Sequence[str], encoder: str,
                       training_config: dict | None = None) -> Project:
        if not name or not name.strip():
            raise ConfigError("a project needs a non-empty name")
        if not target_langs:
            raise ConfigError(f"project {name!r}: give at least one target language")
        if source_lang in target_langs:
            raise ConfigError(f"project {name!r}: the source language {source_lang!r} is also "
                              "listed as a target language")
        schema = LabelSchema(entity_types)
        with self.write() as s:
            if s.scalar(sa.select(Project.id).where(Project.name == name)) is not None:
                raise StoreConflict(f"a project named {name!r} already exists")
            project = Project(name=name, source_lang=source_lang,
                              target_langs=list(target_langs), label_schema=schema.to_dict(),
                              encoder=encoder, training_config=dict(training_config or {}))
            s.add(project)
            s.flush()
            s.add(RetrainLock(project_id=project.id))
        return project

    def get_project(self, name: str, session: Session | None = None) -> Project:
        if session is None:
            with self.read() as s:
                return self.get_project(name, s)
        project = session.scalar(sa.select(Project).where(Project.name == name))
        if project is None:
            known = session.scalars(sa.select(Project.name).order_by(Project.name)).all()
            raise ProjectNotFound(f"no project named {name!r}; known projects: "
                                  f"{', '.join(known) or 'none (create one first)'}")
        return project

    def list_projects(self) -> list[Project]:
        with self.read() as s:
            return list(s.scalars(sa.select(Project).order_by(Project.name)))

    def update_training_config(self, name: str, training_config: dict) -> None:
        with self.write() as s:
            self.get_project(name, s).training_config = dict(training_config)

    def set_auto_retrain(self, name: str, on: bool) -> None:
        """Switch automatic retraining of project ``name`` on or off (on-demand retrains
        run either way)."""
        with self.write() as s:
            self.get_project(name, s).auto_retrain = bool(on)

    def dev_set(self, name: str) -> DevSet:
        """The project's current :class:`DevSet` (a few aggregate queries)."""
        with self.read() as s:
            return self._dev_set(s, self.get_project(name, s).id)

    @staticmethod
    def _dev_set(s: Session, project_id: int) -> DevSet:
        import hashlib
        import json

        where = (SentenceRow.project_id == project_id, SentenceRow.role == "target",
                 SentenceRow.split == "dev")
        rows = s.execute(sa.select(SentenceRow.lang, sa.func.count(SentenceRow.id),
                                   sa.func.sum(SentenceRow.id)).where(*where)
                         .group_by(SentenceRow.lang)).all()
        labels = {lang: (n, top) for lang, n, top in s.execute(
            sa.select(SentenceRow.lang, sa.func.count(Annotation.id), sa.func.max(Annotation.id))
            .join(Annotation, Annotation.sentence_id == SentenceRow.id).where(*where)
            .group_by(SentenceRow.lang))}
        state = sorted((lang, int(n), int(total or 0), *map(int, labels.get(lang, (0, 0))))
                       for lang, n, total in rows)
        digest = hashlib.sha1(json.dumps(state).encode()).hexdigest()[:12]
        return DevSet({lang: n for lang, n, *_ in state}, digest)

    # -- sentences and labels ----------------------------------------------------------
    def import_sentences(self, name: str, sentences: Sequence[Sentence], *, role: str,
                         split: str, author: str = "import", origin: str = "import",
                         backend: str = "import", source_name: str = "import") -> ImportReport:
        """Add sentences (and their tags as annotations) in ONE transaction, as one import
        batch named ``source_name`` (the file or dataset they came from; see
        :mod:`concner.store.imports` to list and undo imports).

        Translations (``role="translation"``) are linked to their source sentence by
        ``meta["source_id"]`` (or, failing that, the same id), with the projection status
        from ``meta["projection_status"]`` (``ok``/``repaired``/``failed``, default ``ok``),
        ``meta["reason"]`` and ``meta["backend"]`` (default ``backend``).
        Raises :class:`DataFormatError` (file and line when known) and imports nothing
        when any sentence is invalid.
        """
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if origin not in ORIGINS:
            raise ConfigError(f"origin must be one of {', '.join(ORIGINS)}, got {origin!r}")
        report = ImportReport()
        with self.write() as s:
            project = self.get_project(name, s)
            schema = LabelSchema.from_dict(project.label_schema)
            langs = {project.source_lang} if role == "source" else set(project.target_langs)
            seen: set[str] = set()
            for sent in sentences:
                self._validate(sent, schema, langs, role, split, seen)
            existing = self._existing_ids(s, project.id, [x.id for x in sentences])
            if existing:
                first = next(x for x in sentences if x.id in existing)
                raise DataFormatError(
                    f"sentence id {first.id!r} is already in project {name!r} "
                    f"({len(existing)} duplicate ids); give new ids or import into a new "
                    "project", **_where(first))
            sources: dict[str, int] = {}
            if role == "translation":
                wanted = [str(x.meta.get("source_id", x.id)) for x in sentences]
                sources = self._source_ids(s, project.id, wanted)
                for sent, src in zip(sentences, wanted):
                    if src not in sources:
                        raise DataFormatError(
                            f"translation {sent.id!r} names source sentence {src!r}, which is "
                            "not in the project; import the source sentences first", **_where(sent))
            batch = None
            if sentences:
                batch = ImportBatch(project_id=project.id, source_name=source_name[:1000],
                                    role=role, split=split, n_sentences=len(sentences),
                                    lang=_one_lang(sentences))
                s.add(batch)
                s.flush()
                report.batch_id = batch.id
            rows = [SentenceRow(project_id=project.id, external_id=x.id, lang=x.lang, role=role,
                                split=split, import_batch_id=None if batch is None else batch.id,
                                tokens=list(x.tokens),
                                offsets=[list(o) for o in x.offsets], text=x.text,
                                meta={k: v for k, v in x.meta.items() if k != "db_id"})
                    for x in sentences]
            s.add_all(rows)
            s.flush()
            now = utcnow()
            for sent, row in zip(sentences, rows):
                if sent.tags is not None:
                    s.add(Annotation(sentence_id=row.id, tags=list(sent.tags), author=author,
                                     origin=origin, created_at=now))
                    report.labelled += 1
                if role == "translation":
                    status = str(sent.meta.get("projection_status", "ok"))
                    s.add(TranslationLink(
                        project_id=project.id,
                        source_sentence_id=sources[str(sent.meta.get("source_id", sent.id))],
                        translation_sentence_id=row.id, lang=sent.lang,
                        backend=str(sent.meta.get("backend", backend)), status=status,
                        reason=sent.meta.get("reason")))
                    report.links[status] += 1
            report.sentences = len(rows)
        return report

    @staticmethod
    def _validate(sent: Sentence, schema: LabelSchema, langs: set[str], role: str, split: str,
                  seen: set[str]) -> None:
        if sent.id in seen:
            raise DataFormatError(f"sentence id {sent.id!r} appears twice", **_where(sent))
        seen.add(sent.id)
        if sent.lang not in langs:
            raise DataFormatError(
                f"sentence {sent.id!r} is in {sent.lang!r}, but {role} sentences of this project "
                f"must be in {', '.join(sorted(langs))}", **_where(sent))
        if not sent.tokens:
            raise DataFormatError(f"sentence {sent.id!r} has no tokens", **_where(sent))
        if sent.tags is None and split == "dev":
            raise DataFormatError(f"dev sentence {sent.id!r} has no tags; dev sentences are gold "
                                  "labels for evaluation", **_where(sent))
        if sent.tags is not None:
            try:
                schema.check_tags(sent.tags)
            except LabelSchemaError as exc:
                raise DataFormatError(f"sentence {sent.id!r}: {exc}", **_where(sent)) from None
        if role == "translation":
            status = str(sent.meta.get("projection_status", "ok"))
            if status not in LINK_STATUSES:
                raise DataFormatError(f"translation {sent.id!r}: projection_status must be one "
                                      f"of {', '.join(LINK_STATUSES)}, got {status!r}",
                                      **_where(sent))

    @staticmethod
    def _existing_ids(s: Session, project_id: int, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            found.update(s.scalars(sa.select(SentenceRow.external_id).where(
                SentenceRow.project_id == project_id,
                SentenceRow.external_id.in_(ids[i:i + _CHUNK]))))
        return found

    @staticmethod
    def _source_ids(s: Session, project_id: int, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = sorted(set(ids))
        for i in range(0, len(unique), _CHUNK):
            found.update((ext, sid) for ext, sid in s.execute(
                sa.select(SentenceRow.external_id, SentenceRow.id).where(
                    SentenceRow.project_id == project_id, SentenceRow.role == "source",
                    SentenceRow.external_id.in_(unique[i:i + _CHUNK]))))
        return found

    def add_annotation(self, name: str, external_id: str, tags: Sequence[str], *, author: str,
                       origin: str = "argilla", session: Session | None = None) -> int:
        """Record a new label version for one sentence; returns the annotation id."""
        if origin not in ORIGINS:
            raise ConfigError(f"origin must be one of {', '.join(ORIGINS)}, got {origin!r}")
        if session is None:
            with self.write() as s:
                return self.add_annotation(name, external_id, tags, author=author,
                                           origin=origin, session=s)
        project = self.get_project(name, session)
        LabelSchema.from_dict(project.label_schema).check_tags(tags)
        sid = session.scalar(sa.select(SentenceRow.id).where(
            SentenceRow.project_id == project.id, SentenceRow.external_id == external_id))
        if sid is None:
            raise DataFormatError(f"project {name!r} has no sentence {external_id!r}")
        row = SentenceRow
        n_tokens = len(session.scalar(sa.select(row.tokens).where(row.id == sid)))
        if len(tags) != n_tokens:
            raise LabelSchemaError(f"sentence {external_id!r}: {len(tags)} tags for "
                                   f"{n_tokens} tokens")
        ann = Annotation(sentence_id=sid, tags=list(tags), author=author, origin=origin)
        session.add(ann)
        session.flush()
        return ann.id

    def annotation_count(self, name: str, *, training_only: bool = False) -> int:
        """Number of annotation versions in the project (never decreases); with
        ``training_only``, of those outside the dev split (gold dev sentences are scored
        against, never trained on: what the new-labels retrain policy counts)."""
        with self.read() as s:
            return self._annotation_count(s, self.get_project(name, s).id,
                                          training_only=training_only)

    @staticmethod
    def _annotation_count(s: Session, project_id: int, *, training_only: bool = False) -> int:
        query = sa.select(sa.func.count(Annotation.id)).join(
            SentenceRow, Annotation.sentence_id == SentenceRow.id).where(
            SentenceRow.project_id == project_id)
        if training_only:
            query = query.where(SentenceRow.split != "dev")
        return s.scalar(query) or 0

    @staticmethod
    def current_labels(s: Session, sentence_ids: Iterable[int],
                       upto_annotation: int | None = None) -> dict[int, CurrentLabel]:
        """Current label (see :mod:`concner.store.consensus`) of each labelled sentence;
        with ``upto_annotation``, as it was when that annotation id was the newest
        (annotations are never updated or deleted, so the past is exact)."""
        ids = sorted(set(sentence_ids))
        versions: dict[int, list[Annotation]] = defaultdict(list)
        upto = () if upto_annotation is None else (Annotation.id <= upto_annotation,)
        for i in range(0, len(ids), _CHUNK):
            for ann in s.scalars(sa.select(Annotation).where(
                    Annotation.sentence_id.in_(ids[i:i + _CHUNK]), *upto)
                    .order_by(Annotation.id)):
                versions[ann.sentence_id].append(ann)
        return {sid: current_label(v) for sid, v in versions.items()}

    def sentences(self, name: str, *, role: str | None = None, split: str | None = None,
                  lang: str | None = None, labelled: bool | None = None) -> list[Sentence]:
        """Stored sentences with their current tags (``meta`` carries agreement)."""
        with self.read() as s:
            project = self.get_project(name, s)
            q = sa.select(SentenceRow).where(SentenceRow.project_id == project.id)
            for col, val in ((SentenceRow.role, role), (SentenceRow.split, split),
                             (SentenceRow.lang, lang)):
                if val is not None:
                    q = q.where(col == val)
            rows = list(s.scalars(q.order_by(SentenceRow.id)))
            current = self.current_labels(s, [r.id for r in rows])
        out = []
        for r in rows:
            cur = current.get(r.id)
            if labelled is not None and (cur is not None) != labelled:
                continue
            extra = {} if cur is None else {"agreement": cur.agreement, "n_voters": cur.n_voters}
            out.append(row_to_sentence(r, None if cur is None else cur.tags, extra))
        return out

    def counts(self, name: str) -> dict[str, Any]:
        """Sentences per (role, split, lang), labelled ones and annotation versions."""
        with self.read() as s:
            project = self.get_project(name, s)
            total = s.execute(sa.select(SentenceRow.role, SentenceRow.split, SentenceRow.lang,
                                        sa.func.count()).where(
                SentenceRow.project_id == project.id).group_by(
                SentenceRow.role, SentenceRow.split, SentenceRow.lang)).all()
            labelled = {(r, sp, l): n for r, sp, l, n in s.execute(
                sa.select(SentenceRow.role, SentenceRow.split, SentenceRow.lang,
                          sa.func.count(sa.distinct(SentenceRow.id))).join(
                    Annotation, Annotation.sentence_id == SentenceRow.id).where(
                    SentenceRow.project_id == project.id).group_by(
                    SentenceRow.role, SentenceRow.split, SentenceRow.lang))}
            links = dict(s.execute(sa.select(TranslationLink.status, sa.func.count()).where(
                TranslationLink.project_id == project.id).group_by(TranslationLink.status)).all())
            n_ann = self._annotation_count(s, project.id)
        rows = [{"role": r, "split": sp, "lang": l, "sentences": n,
                 "labelled": labelled.get((r, sp, l), 0)} for r, sp, l, n in sorted(total)]
        return {"sentences": rows, "translation_links": links, "annotations": n_ann}

    # -- predictions -------------------------------------------------------------------
    def save_predictions(self, model_version_id: int, rows: Sequence[tuple],
                         *, strategy: str | None = None,
                         input_hashes: dict[int, str] | None = None) -> int:
        """Replace this model version's predictions for the given sentences.

        ``rows`` are ``(sentence_db_id, tags, spans as dicts, uncertainty)``, or with a
        fifth item, the active-learning score of ``strategy`` (higher = more informative),
        and a sixth, the sentence's position in the strategy's order (1 = ask first).
        ``input_hashes``: sentence id -> :func:`concner.store.pool_stream.input_hash` of
        what was predicted (lets a later pool prediction reuse the row).
        """
        input_hashes = input_hashes or {}
        with self.write() as s:
            ids = [r[0] for r in rows]
            for i in range(0, len(ids), _CHUNK):
                s.execute(sa.delete(PredictionRow).where(
                    PredictionRow.model_version_id == model_version_id,
                    PredictionRow.sentence_id.in_(ids[i:i + _CHUNK])))
            s.add_all([PredictionRow(sentence_id=r[0], model_version_id=model_version_id,
                                     tags=list(r[1]), spans=list(r[2]), uncertainty=float(r[3]),
                                     al_score=None if len(r) < 5 or r[4] is None else float(r[4]),
                                     al_strategy=strategy if len(r) >= 5 else None,
                                     al_rank=None if len(r) < 6 or r[5] is None else int(r[5]),
                                     input_hash=input_hashes.get(r[0]))
                       for r in rows])
        return len(rows)

    def predictions(self, model_version_id: int) -> list[PredictionRow]:
        with self.read() as s:
            return list(s.scalars(sa.select(PredictionRow).where(
                PredictionRow.model_version_id == model_version_id).order_by(
                PredictionRow.uncertainty.desc())))

    # -- sync state --------------------------------------------------------------------
    def get_sync_state(self, name: str, dataset: str) -> SyncState | None:
        with self.read() as s:
            project = self.get_project(name, s)
            return s.scalar(sa.select(SyncState).where(SyncState.project_id == project.id,
                                                       SyncState.dataset == dataset))

    def set_sync_state(self, name: str, dataset: str, *, status: str, message: str | None = None,
                       cursor: str | None = None, when: datetime | None = None) -> None:
        with self.write() as s:
            project = self.get_project(name, s)
            state = s.scalar(sa.select(SyncState).where(SyncState.project_id == project.id,
                                                        SyncState.dataset == dataset))
            if state is None:
                state = SyncState(project_id=project.id, dataset=dataset)
                s.add(state)
            state.status, state.message = status, message
            state.last_sync_at = when or utcnow()
            if cursor is not None:
                state.cursor = cursor
