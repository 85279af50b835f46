"""A point-in-time view of a project's data, as training input.

:func:`take_snapshot` reads everything a retrain needs inside ONE read transaction
(``REPEATABLE READ`` on PostgreSQL, a WAL read snapshot on SQLite), so labels arriving
while a run trains never leak into it, and the label counts it records are exactly what it
trained on. Sentences carry their current labels (:mod:`concner.store.consensus`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa

from concner.labels import LabelSchema
from concner.sentence import Sentence
from concner.store.model_versions import Annotation, Project, SentenceRow, TranslationLink
from concner.store.projects import row_to_sentence

USABLE_LINKS = ("ok", "repaired")


@dataclass(frozen=True)
class Watermark:
    """The newest sentence, annotation and translation-link ids a snapshot saw. Rows are
    only ever added with growing ids (and annotations never change), so a snapshot taken
    later ``as_of`` a watermark reads the same data, as long as nothing was deleted since
    (an undone import): a retry trains what the lost run trained."""

    sentence: int
    annotation: int
    link: int

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "annotation": self.annotation, "link": self.link}

    @classmethod
    def from_dict(cls, data) -> Watermark | None:
        try:
            return cls(int(data["sentence"]), int(data["annotation"]), int(data["link"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class Snapshot:
    """Training data of one project at one moment.

    Attributes:
        source: gold source-language sentences (role ``source``, split ``train``/``pool``).
        pairs: ``(source index, translation)`` for every usable (``ok``/``repaired``)
            translation of a gold source sentence (with its projected labels when it has
            them; without, it still serves the translation-contrastive loss); a source may
            have one per target language.
        target_gold: labelled target-language sentences outside ``dev``.
        unlabelled_target: target-language sentences without labels (for distillation).
        unlabelled_source: source-language sentences without labels outside ``dev`` (the
            pool annotators label from; ranked by active learning).
        dev: target language -> gold dev sentences.
        label_counts: ``source``, ``translated``, ``target``, ``annotations`` (versions
            seen), ``target_by_lang``, ``dev_by_lang``, ``dev_fingerprint`` (see
            :class:`concner.store.projects.DevSet`), ``unlabelled``.
        label_versions: sentence id -> label version (the annotation id of its current
            label) of every labelled training sentence (``source`` and ``target_gold``); a
            corrected label gets a new version (see :mod:`concner.jobs.incremental`).
    """

    project: str
    schema: LabelSchema
    source_lang: str
    target_langs: list[str]
    encoder: str
    training_config: dict
    source: list[Sentence] = field(default_factory=list)
    pairs: list[tuple[int, Sentence]] = field(default_factory=list)
    target_gold: list[Sentence] = field(default_factory=list)
    unlabelled_target: list[Sentence] = field(default_factory=list)
    unlabelled_source: list[Sentence] = field(default_factory=list)
    dev: dict[str, list[Sentence]] = field(default_factory=dict)
    label_counts: dict = field(default_factory=dict)
    label_versions: dict[int, int] = field(default_factory=dict)
    watermark: Watermark | None = None


def take_snapshot(store, name: str, as_of: Watermark | None = None) -> Snapshot:
    """Read project ``name`` from ``store`` in one consistent transaction; ``as_of``: only
    the rows a snapshot with that :class:`Watermark` saw (the data of a lost run)."""
    with store.read(snapshot=True) as s:
        project: Project = store.get_project(name, s)
        mark = as_of or _watermark(s, project.id)
        rows = list(s.scalars(sa.select(SentenceRow).where(
            SentenceRow.project_id == project.id, SentenceRow.id <= mark.sentence)
            .order_by(SentenceRow.id)))
        links = list(s.scalars(sa.select(TranslationLink).where(
            TranslationLink.project_id == project.id, TranslationLink.id <= mark.link)
            .order_by(TranslationLink.id)))
        current = store.current_labels(s, [r.id for r in rows], upto_annotation=mark.annotation)
        n_annotations = store._annotation_count(s, project.id)
        n_training_annotations = store._annotation_count(s, project.id, training_only=True)
        dev_set = store._dev_set(s, project.id)
    snap = _facts(name, project)
    snap.watermark = mark
    by_id: dict[int, Sentence] = {}
    for row in rows:
        cur = current.get(row.id)
        extra = {} if cur is None else {"agreement": cur.agreement, "n_voters": cur.n_voters}
        sent = row_to_sentence(row, None if cur is None else cur.tags, extra)
        by_id[row.id] = sent
        if row.role == "source":
            if sent.tags is not None and row.split != "dev":
                snap.source.append(sent)
                snap.label_versions[row.id] = cur.annotation_id
            elif sent.tags is None and row.split != "dev":
                snap.unlabelled_source.append(sent)
        elif row.role == "target":
            if row.split == "dev":
                if sent.tags is not None:
                    snap.dev.setdefault(row.lang, []).append(sent)
            elif sent.tags is not None:
                snap.target_gold.append(sent)
                snap.label_versions[row.id] = cur.annotation_id
            else:
                snap.unlabelled_target.append(sent)
    source_index = {sent.meta["db_id"]: i for i, sent in enumerate(snap.source)}
    for link in links:
        tr = by_id.get(link.translation_sentence_id)
        if (link.status in USABLE_LINKS and link.source_sentence_id in source_index
                and tr is not None):
            tr.meta.update(link_status=link.status, backend=link.backend)
            snap.pairs.append((source_index[link.source_sentence_id], tr))
    target_by_lang = Counter(x.lang for x in snap.target_gold)
    snap.label_counts = {
        "source": len(snap.source),
        "translated": len(snap.pairs),
        "target": len(snap.target_gold),
        "annotations": n_annotations,
        #: of those, outside the dev split (the new-labels retrain policy counts these)
        "training_annotations": n_training_annotations,
        "target_by_lang": dict(sorted(target_by_lang.items())),
        "dev_by_lang": {lang: len(v) for lang, v in sorted(snap.dev.items())},
        #: which dev set this snapshot's evaluations use (concner.store.projects.DevSet)
        "dev_fingerprint": dev_set.fingerprint,
        "unlabelled": len(snap.unlabelled_target),
        "links_by_status": dict(sorted(Counter(link.status for link in links).items())),
        #: what a retry of this run reads again (take_snapshot(as_of=...))
        "watermark": mark.to_dict(),
    }
    return snap


def project_facts(store, name: str) -> Snapshot:
    """A :class:`Snapshot` of project ``name`` without its sentences: languages, labels,
    encoder and saved training config (what :func:`concner.jobs.context.project_config`
    reads), for a job that streams the sentences itself."""
    with store.read() as s:
        return _facts(name, store.get_project(name, s))


def _facts(name: str, project: Project) -> Snapshot:
    return Snapshot(project=name, schema=LabelSchema.from_dict(project.label_schema),
                    source_lang=project.source_lang, target_langs=list(project.target_langs),
                    encoder=project.encoder, training_config=dict(project.training_config or {}))


def current_watermark(store, name: str) -> Watermark:
    """The :class:`Watermark` a snapshot taken now would have (without reading the rows)."""
    with store.read() as s:
        return _watermark(s, store.get_project(name, s).id)


def _watermark(s, project_id: int) -> Watermark:
    def newest(column, *where):
        return int(s.scalar(sa.select(sa.func.coalesce(sa.func.max(column), 0)).where(*where)))

    sentence = newest(SentenceRow.id, SentenceRow.project_id == project_id)
    annotation = int(s.scalar(sa.select(sa.func.coalesce(sa.func.max(Annotation.id), 0)).join(
        SentenceRow, Annotation.sentence_id == SentenceRow.id).where(
        SentenceRow.project_id == project_id)))
    link = newest(TranslationLink.id, TranslationLink.project_id == project_id)
    return Watermark(sentence, annotation, link)


def pairs_by_language(snap: Snapshot) -> dict[str, list[tuple[int, Sentence]]]:
    out: dict[str, list[tuple[int, Sentence]]] = defaultdict(list)
    for i, tr in snap.pairs:
        out[tr.lang].append((i, tr))
    return dict(out)
