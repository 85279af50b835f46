"""The worker's Argilla sync: store <-> Argilla, both ways, for one project.

``sync_project(store, project, io)``, per dataset (source annotation in the source
language, correction in each target language):

1. make sure the dataset exists (labels, metadata, guidelines, task distribution);
2. keep the next ``queue_size`` sentences to ask in the dataset (the push policy): of the
   sentences that still need a person (unlabelled, not dev), in the active-learning order
   the pool prediction stored (source and target pools alike), the first ``queue_size``
   are created if missing; as they get answered (labelled in the store) the next ones
   move up and are created, so the queue is topped up. Records already in Argilla
   further down the order (a batch sent from the Review page, an older model's top, an
   older sync's policy) stay and are kept up to date. Suggestions are the active model's
   predictions (``agent`` = ``v<version>``: corrections of the target predictions,
   pre-annotations of the source sentences); a record a person already answered is never
   touched, so after a promotion only unanswered records get the new model's suggestions.
   A dataset is created only when it gets its first records (no empty datasets on
   Argilla's home page);
3. pull the submitted answers newer than the dataset's saved cursor, and store each
   annotator's answer (author = Argilla username) together with the new cursor in one
   transaction: a crash or an unreachable server loses nothing and the next sync resumes.

What a sync reads grows with what changed, not with the dataset: the push skips the
records that match what the cursor says was pushed, and the pull reads nothing when no
answer changed and only the answered records otherwise (see
:meth:`~concner.argilla.client.ArgillaIO.pull`). Every ``services.argilla_full_sync_hours``
one sync reads every record (the safety net: a record deleted in Argilla is pushed again).
Each dataset's sync logs one INFO line (records read, new or changed answers, seconds).

Listing this module in ``services.sync_modules`` registers :func:`sync_hook` with the
worker (it calls :func:`register_sync_hooks`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from concner.argilla.client import ArgillaIO, PushReport, SpanSuggestion, dataset_name
from concner.config import Config
from concner.errors import LabelSchemaError
from concner.labels import LabelSchema, Span
from concner.sentence import Sentence

log = logging.getLogger("concner.argilla")


@dataclass
class DatasetSync:
    """What one sync did for one Argilla dataset."""

    dataset: str
    pushed: int = 0
    skipped_answered: int = 0
    new_labels: int = 0
    snapped_spans: int = 0
    cursor: str | None = None
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    #: answers pulled that equal their author's stored latest version (not stored again)
    unchanged_answers: int = 0
    #: what it cost: records read from Argilla, HTTP requests, seconds; a full read or not
    records_read: int = 0
    requests: int = 0
    seconds: float = 0.0
    full: bool = False
    #: the pull's ``recheck_after``: answers it could not see yet are visible this many
    #: seconds later (None: nothing pending)
    recheck_after: float | None = None

    @property
    def message(self) -> str:
        msg = f"{self.new_labels} new labels, {self.pushed} records pushed"
        if self.snapped_spans:
            msg += f", {self.snapped_spans} spans snapped to whole tokens"
        if self.problems:
            sid, author, why = self.problems[0]
            msg += f", {len(self.problems)} answers not usable (e.g. {sid} by {author}: {why})"
        return msg


def _predictions(store, project: str) -> tuple[dict[int, SpanSuggestion], dict[int, tuple], str | None]:
    """Active model's predictions by sentence row id, their push order key by sentence row
    id (:func:`~concner.store.model_versions.ask_order_key`: the order of ``active.strategy``
    stored by the pool prediction, else its score, else the uncertainty; smallest first),
    and the version name (``v3``)."""
    from concner.store.model_versions import ask_order_key

    mv = store.active_model_version(project)
    if mv is None:
        return {}, {}, None
    preds, priority = {}, {}
    for row in store.predictions(mv.id):
        spans = [Span(int(d["start"]), int(d["end"]), d["label"], d.get("score"))
                 for d in row.spans]
        preds[row.sentence_id] = SpanSuggestion(spans, row.uncertainty, row.al_rank)
        priority[row.sentence_id] = ask_order_key(row.al_rank, row.al_score, row.uncertainty)
    return preds, priority, f"v{mv.version}"


def _state(s, project_id: int, dataset: str):
    """The dataset's sync state row in session ``s`` (added when missing)."""
    from concner.store.model_versions import SyncState

    state = s.scalar(sa.select(SyncState).where(SyncState.project_id == project_id,
                                                SyncState.dataset == dataset))
    if state is None:
        state = SyncState(project_id=project_id, dataset=dataset)
        s.add(state)
    return state


def record_pushed(store, project: str, dataset: str, dataset_id: str,
                  pushed: Mapping[str, str]) -> None:
    """Remember records pushed outside the sync (the Review page's batch: sentence id ->
    the push memo's digest) in the dataset's cursor, so the app marks them "in Argilla"
    and the sync keeps them up to date (:func:`_save` keeps what arrives during a sync)."""
    if not pushed:
        return
    with store.write() as s:
        state = _state(s, store.get_project(project, s).id, dataset)
        state.cursor = ArgillaIO.add_pushed(state.cursor, dataset_id, pushed)


def _save(store, project: str, dataset: str, annotations, cursor: str, *,
          dataset_id: str | None = None, known: frozenset[str] = frozenset(),
          waiting: frozenset[str] = frozenset()) -> tuple[int, str]:
    """Annotations and the dataset's cursor in one transaction; returns how many were
    stored and the cursor saved. An answer equal to its author's latest stored version
    from Argilla (submitted again unchanged, or pulled again) is not stored twice. Records
    :func:`record_pushed` added while the sync ran (not in ``known``, the memo it started
    from) and still ``waiting`` are kept in the saved cursor's memo."""
    from concner.store.model_versions import Annotation, SentenceRow, utcnow

    stored = 0
    with store.write() as s:
        project_id = store.get_project(project, s).id
        for ann in annotations:
            latest = s.scalar(
                sa.select(Annotation.tags).join(SentenceRow, SentenceRow.id == Annotation.sentence_id)
                .where(SentenceRow.project_id == project_id,
                       SentenceRow.external_id == ann.sentence_id,
                       Annotation.author == ann.author, Annotation.origin == "argilla")
                .order_by(Annotation.id.desc()).limit(1))
            if latest is not None and list(latest) == list(ann.tags):
                continue
            store.add_annotation(project, ann.sentence_id, ann.tags, author=ann.author,
                                 origin="argilla", session=s)
            stored += 1
        state = _state(s, project_id, dataset)
        if dataset_id is not None and state.cursor:
            added = {sid: d for sid, d in ArgillaIO.pushed_memo(state.cursor, dataset_id).items()
                     if sid not in known and sid in waiting}
            cursor = ArgillaIO.add_pushed(cursor, dataset_id, added) if added else cursor
        state.cursor, state.last_sync_at, state.status = cursor, utcnow(), "ok"
    return stored, cursor


def sync_dataset(store, project: str, io: ArgillaIO, role: str, lang: str, schema: LabelSchema,
                 *, min_submitted: int = 1, queue_size: int = 0, active: tuple | None = None,
                 full_every_s: float = 24 * 3600.0) -> DatasetSync:
    """Sync one dataset; ``queue_size``: how many of the next sentences to ask are kept in
    Argilla (0 = the whole pool; the push policy in the module doc), so a 20,000-sentence
    pool does not flood the annotators' queue. Records are pushed in the active-learning
    order (see :func:`_predictions`): the most informative first, then sentences without a
    prediction. ``active``: what :func:`_predictions` gives, read once by
    :func:`sync_project` for all its datasets (read here when None). Every record is read
    when the last such sync is ``full_every_s`` seconds old (0: always), else only what
    changed (module doc). A dataset that does not exist and has nothing to get is not
    created (the report says 0 pushed)."""
    started, before = time.perf_counter(), dict(io.stats)
    store_role = "source" if role == "source" else "target"
    every = store.sentences(project, role=store_role, lang=lang)
    todo = [s for s in every if s.tags is None and s.meta.get("split") != "dev"]
    name = dataset_name(project, role, lang)
    if not todo and not io.dataset_exists(name):
        return DatasetSync(name, requests=io.stats["requests"] - before["requests"],
                           seconds=time.perf_counter() - started)
    io.ensure_dataset(project, role, lang, schema.entity_types, min_submitted=min_submitted)
    # the active model's suggestions and order: corrections of target predictions, and
    # pre-annotations of source sentences to label
    preds_by_row, priority, version = active or _predictions(store, project)
    preds = {s.id: preds_by_row[s.meta["db_id"]] for s in todo if s.meta["db_id"] in preds_by_row}
    todo.sort(key=lambda s: (s.meta["db_id"] not in priority,
                             priority.get(s.meta["db_id"], ()), s.id))
    report = DatasetSync(name)
    state = store.get_sync_state(project, name)
    since = state.cursor if state else None
    report.full = full = ArgillaIO.full_sync_due(since, full_every_s)
    ds_id = io.dataset_id(name)
    known = frozenset(ArgillaIO.pushed_memo(since, ds_id))
    memo = {} if full else ArgillaIO.pushed_memo(since, ds_id)
    head, tail = (todo[:queue_size], todo[queue_size:]) if queue_size else (todo, [])
    pushed = io.push(name, head, preds, model_version=version, memo=memo)
    # further down the order: only records already there (the memo knows them; a full
    # sync looks every one up) are brought up to date, none is created
    known = tail if full else [s for s in tail if s.id in memo]
    kept = (io.push(name, known, preds, model_version=version, only_existing=True, memo=memo)
            if known else PushReport(name))
    report.pushed = pushed.created + pushed.updated + kept.updated
    report.skipped_answered = pushed.skipped_answered + kept.skipped_answered
    waiting = {s.id for s in todo}  # labelled sentences leave the memo with the pool
    memo = {sid: d for sid, d in memo.items() if sid in waiting}
    by_id: dict[str, Sentence] = {s.id: s for s in every}
    pulled = io.pull(name, by_id, since=since, full=full, pushed=memo)
    usable = []
    report.problems = list(pulled.problems)
    for ann in pulled.annotations:
        try:
            schema.check_tags(ann.tags)
        except LabelSchemaError as exc:
            report.problems.append((ann.sentence_id, ann.author, str(exc)))
            continue
        usable.append(ann)
    stored, report.cursor = _save(store, project, name, usable, pulled.cursor, dataset_id=ds_id,
                                  known=known, waiting=frozenset(waiting))
    report.new_labels = stored
    report.recheck_after = pulled.recheck_after
    report.unchanged_answers = len(usable) - stored
    report.snapped_spans = sum(a.snapped_spans for a in usable)
    report.records_read = io.stats["records_read"] - before["records_read"]
    report.requests = io.stats["requests"] - before["requests"]
    report.seconds = time.perf_counter() - started
    problems = f", {len(report.problems)} answers not usable" if report.problems else ""
    log.info("argilla sync %s/%s: %d records read (%s), %d new or changed answers, "
             "%d records pushed, %d HTTP requests, %.2fs%s", project, name, report.records_read,
             "full" if full else "incremental", report.new_labels, report.pushed,
             report.requests, report.seconds, problems)
    return report


def sync_project(store, project: str, io: ArgillaIO, *, min_submitted: int = 1,
                 queue_size: int = 0, full_every_s: float = 24 * 3600.0) -> list[DatasetSync]:
    """Sync the project's source dataset and each target-language dataset (see module doc).

    Raises :class:`~concner.errors.ServiceUnavailable` when Argilla cannot be reached after
    the retries; datasets synced before the failure keep their saved progress."""
    proj = store.get_project(project)
    schema = LabelSchema.from_dict(proj.label_schema)
    plan = [("source", proj.source_lang)] + [("target", lang) for lang in proj.target_langs]
    active = _predictions(store, project)  # every pool's predictions: read once per sync
    return [sync_dataset(store, project, io, role, lang, schema, min_submitted=min_submitted,
                         queue_size=queue_size, active=active, full_every_s=full_every_s)
            for role, lang in plan]


def sync_hook(store, project: str, config: Config) -> list:
    """The worker's hook: ``(store, project, config) -> [SyncReport]``."""
    from concner.jobs.sync_hooks import SyncReport

    services = config.services
    io = ArgillaIO.from_config(services)
    out = []
    for rep in sync_project(store, project, io, min_submitted=services.argilla_min_submitted,
                            queue_size=services.argilla_queue_size,
                            full_every_s=services.argilla_full_sync_hours * 3600.0):
        out.append(SyncReport(dataset=rep.dataset, n_new=rep.new_labels, cursor=rep.cursor,
                              message=rep.message, recheck_after=rep.recheck_after))
    return out


def register_sync_hooks(registry) -> None:
    """Register :func:`sync_hook` as ``argilla`` on ``registry`` (a
    :class:`concner.jobs.sync_hooks.SyncHooks`; the worker calls this for the modules
    named in ``services.sync_modules``)."""
    registry.register("argilla", sync_hook)
