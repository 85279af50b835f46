"""What the worker's jobs do: retrain, evaluate, predict, translate, and the retrain policy.

Each function takes a :class:`JobContext` (store, registry, base config, worker id, a
shutdown event and a way to enqueue follow-ups), so it runs the same inside the Huey
consumer and in tests. A retrain:

1. takes the project's retrain lock (at most one per project; others coalesce),
2. snapshots the store and records the label counts it saw (source, translated, target),
3. plans a full retrain or an incremental update of the active model
   (:func:`concner.jobs.incremental.plan_retrain`) and records the plan on the run: its kind,
   why, and the labelled sentences (with label versions) the new model has learnt from,
4. trains with :func:`concner.method.training.train` (an update warm-starts from the active
   model), writing progress and honouring cancel, and checkpoints every epoch into the
   project's resume folder (:func:`resume_dir`): a run re-queued after its worker died or
   shut down resumes from the last finished epoch when it trains on the same snapshot
   and config (it says so in its log: "resumed from stage 1 epoch 2 of 3"),
5. evaluates every target language on its gold dev sentences, one metrics row each,
6. publishes the checkpoint (:class:`concner.jobs.registry.ModelRegistry` decides promotion;
   on promotion ``ctx.after_promotion`` runs: the worker queues the pool prediction,
   which scores the pool with ``active.strategy`` and then queues the Argilla sync),
7. deletes the resume folder when the run finished (succeeded, failed or cancelled; not
   when it was interrupted by a shutdown, nor when another worker took its lock over),
   releases the lock and enqueues the coalesced follow-up run, if any.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from concner.config import Config, config_from_dict
from concner.errors import ConcnerError, JobCancelled
from concner.jobs.registry import ModelRegistry
from concner.store import Store
from concner.store.snapshot import Snapshot, Watermark, current_watermark, take_snapshot

log = logging.getLogger("concner.jobs.worker")
LOG_TAIL = 30
#: sub-folder of a project's checkpoint folder holding its retrain's resume checkpoint
RESUME_DIR = ".resume"


class WorkerShutdown(JobCancelled):
    """The worker is stopping (SIGTERM): the current run stops at the next step and is
    re-queued."""


@dataclass
class JobContext:
    store: Store
    registry: ModelRegistry
    config: Config
    owner: str
    shutdown: threading.Event = field(default_factory=threading.Event)
    #: ``enqueue_retrain(project, run_id)`` puts a queued run on the queue
    enqueue_retrain: Callable[[str, int], None] = lambda project, run_id: None
    #: ``after_promotion(project)``: a new model became active (the worker queues a pool
    #: prediction, which scores the pool with ``active.strategy``)
    after_promotion: Callable[[str], None] = lambda project: None
    #: ``after_predict(project)``: the active model predicted and scored the pool (the
    #: worker queues a sync, which pushes its suggestions to records nobody answered yet)
    after_predict: Callable[[str], None] = lambda project: None
    #: runs this process is executing now (shown on the worker's heartbeat row)
    current_runs: set = field(default_factory=set)


def _bug(run_id: int, exc: Exception) -> str:
    """A bug, not a user error: log it and keep the traceback where the app can show it."""
    log.exception("run %s failed", run_id)
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"


@dataclass
class JobOutcome:
    """What a job body reports: its final status, error text and model version."""

    status: str = "failed"
    error: str | None = None
    model_version_id: int | None = None


@contextmanager
def job_outcome(ctx: JobContext, run_id: int, *,
                on_shutdown: Callable[[], str] | None = None) -> Iterator[JobOutcome]:
    """Run a job body for ``run_id`` and finish the run whatever happens.

    The body sets ``outcome.status = "succeeded"`` (and the model version) when it got
    through. A cancel becomes ``cancelled``; a user error (:class:`ConcnerError`) and a bug
    become ``failed`` with the message (a bug with its traceback); a worker shutdown calls
    ``on_shutdown()`` (which re-queues the work and returns the error text) when given, and
    otherwise counts as a cancel. Nothing escapes: the worker goes on with the next job.
    """
    outcome = JobOutcome()
    ctx.current_runs.add(run_id)
    try:
        yield outcome
    except JobCancelled as exc:
        if isinstance(exc, WorkerShutdown) and on_shutdown is not None:
            outcome.status, outcome.error = "failed", on_shutdown()
        else:
            outcome.status, outcome.error = "cancelled", str(exc)
    except ConcnerError as exc:
        outcome.status, outcome.error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - any other error is a bug: record it on the run
        outcome.status, outcome.error = "failed", _bug(run_id, exc)
    finally:
        ctx.current_runs.discard(run_id)
        ctx.store.finish_run(run_id, outcome.status, outcome.error,
                             model_version_id=outcome.model_version_id)


def project_config(base: Config, snap: Snapshot) -> Config:
    """The base config overlaid with the project's training config and its languages,
    labels and encoder."""
    data = base.to_dict()
    for section, values in (snap.training_config or {}).items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    data["data"].update(source_lang=snap.source_lang, target_langs=list(snap.target_langs),
                        entity_types=list(snap.schema.entity_types))
    data["model"]["encoder"] = snap.encoder
    return config_from_dict(data, env={})


class RunProgress:
    """Progress callback for :func:`concner.method.training.train` that writes to the run row.

    Writes at most every ``interval`` seconds (and on every stage change), reads the cancel
    flag on each write, and raises :class:`JobCancelled` (or :class:`WorkerShutdown`).
    """

    def __init__(self, ctx: JobContext, run_id: int, interval: float = 0.5):
        self.ctx, self.run_id, self.interval = ctx, run_id, interval
        self.state: dict = {"stage": "queued", "step": 0, "total": 0, "loss": None, "log": []}
        self._last_write = 0.0
        self.lock_lost = False

    def log(self, line: str) -> None:
        log.info("run %s: %s", self.run_id, line)
        self.state["log"] = (self.state["log"] + [line])[-LOG_TAIL:]
        self._write(force=True)

    def stage(self, name: str, total: int = 0) -> None:
        self.state.update(stage=name, step=0, total=total)
        self._write(force=True)

    def __call__(self, event) -> None:
        changed = event.stage != self.state["stage"]
        self.state.update(stage=event.stage, epoch=event.epoch, step=event.step,
                          total=event.total_steps, loss=event.loss,
                          losses=dict(event.losses or {}))
        if event.metrics:
            self.state["metrics"] = event.metrics
        if event.stage == "eval" and event.metrics and event.of_stage:
            self.state["evaluating"] = event.of_stage
            self.state["dev_f1"] = self.state.get("dev_f1", []) + [dict(
                stage=event.of_stage, epoch=event.epoch, **event.metrics)]
        self._write(force=changed or event.step >= event.total_steps)

    def plan(self, steps: dict[str, int]) -> None:
        """The training stages to come and their optimiser steps (the progress line's
        denominator; see :func:`concner.method.training.planned_steps`)."""
        self.state["plan"] = dict(steps)
        self._write(force=True)

    def kept(self, history: list[dict]) -> None:
        """After training: every evaluated epoch's dev F1 (the whole history, also the
        epochs a resumed run did not redo) and the epoch kept per stage, into the run's
        progress and log."""
        from concner.method.training import chosen_epochs

        self.state["dev_f1"] = [dict(stage=r["stage"], epoch=r["epoch"], **r["dev"],
                                     score=r["score"]) for r in history if "score" in r]
        chosen = chosen_epochs(history)
        self.state["chosen"] = {stage: r["epoch"] for stage, r in chosen.items()}
        if chosen:
            self.log("kept " + ", ".join(
                f"{'stage 1' if stage == 'stage1' else 'KD'} epoch {r['epoch']} (dev score "
                f"{100 * r['score']:.2f})" for stage, r in chosen.items()))

    def _write(self, force: bool = False) -> None:
        if self.ctx.shutdown.is_set():
            raise WorkerShutdown("the worker is shutting down")
        if self.lock_lost:
            raise JobCancelled("another worker took over this run's lock (heartbeat too old)")
        now = time.monotonic()
        if not force and now - self._last_write < self.interval:
            return
        self._last_write = now
        if self.ctx.store.update_progress(self.run_id, dict(self.state)):
            raise JobCancelled("cancelled by user")


class LockKeeper:
    """Refreshes the retrain lock heartbeat from a thread while a retrain runs."""

    def __init__(self, ctx: JobContext, run_id: int, progress: RunProgress):
        self.ctx, self.run_id, self.progress = ctx, run_id, progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lock-{run_id}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.ctx.config.services.heartbeat_seconds):
            try:
                if not self.ctx.store.heartbeat_retrain(self.run_id):
                    self.progress.lock_lost = True
                    return
            except ConcnerError as exc:  # database briefly unreachable: try again next beat
                log.warning("run %s: heartbeat failed: %s", self.run_id, exc)


def build_train_data(snap: Snapshot):
    """:class:`concner.method.training.TrainData` from a snapshot: the gold source sentences, then
    the gold target sentences (labelled data without a translation); every usable
    translation paired with its source by index (several target languages per source are
    fine); unlabelled target sentences for distillation; gold dev sentences per language."""
    from concner.method.training import TrainData

    translations = [tr for _, tr in snap.pairs]
    return TrainData(source=list(snap.source) + list(snap.target_gold),
                     translations=translations or None,
                     pairs=[(i, j) for j, (i, _) in enumerate(snap.pairs)] or None,
                     unlabelled_target=list(snap.unlabelled_target), dev=dict(snap.dev))


def evaluate_dev(bundle, snap: Snapshot, known: dict | None = None,
                 batch_size: int = 64, device: str = "auto") -> dict[str, dict]:
    """``lang -> evaluate() report`` on the gold dev sentences of every target language
    that has some (``known`` reports, e.g. from training, are reused)."""
    from concner.method.evaluation import evaluate
    from concner.method.inference import Predictor

    reports: dict[str, dict] = {}
    predictor = None
    for lang in snap.target_langs:
        gold = snap.dev.get(lang)
        if not gold:
            continue
        if known and lang in known:
            reports[lang] = known[lang]
            continue
        predictor = predictor or Predictor(bundle, batch_size=batch_size, device=device)
        reports[lang] = evaluate(gold, [p.tags for p in predictor.predict(gold)])
    return reports


def mean_f1(reports: dict[str, dict]) -> float | None:
    return sum(r["f1"] for r in reports.values()) / len(reports) if reports else None


def resume_dir(ctx: JobContext, name: str) -> Path:
    """Where a retrain of project ``name`` keeps its resume checkpoint: ``.resume/`` in the
    project's registry folder, or, for a remote registry, under its local cache folder.

    One per project, not per run id: a re-queued run gets a new id (and a shutdown's
    re-queue may join a run queued meanwhile), and the project's retrain lock lets one
    retrain run at a time. Which run may resume it is the checkpoint's fingerprint's say
    (same snapshot, config and starting model), so a run that sees new labels starts
    fresh."""
    base = ctx.registry.project_dir(name)
    if ctx.registry.local:
        return Path(base) / RESUME_DIR
    return Path(ctx.registry.cache_dir) / "resume" / base.rstrip("/").rsplit("/", 1)[-1]


def execute_retrain(ctx: JobContext, name: str, run_id: int, *, full: bool = False) -> str:
    """Run queued retrain ``run_id`` of project ``name``; returns the final status, or
    ``"skipped"`` when the run is not queued or another retrain holds the lock.

    ``full=True`` (or the run's ``force_full``, set when it was requested) forces a full
    retrain; otherwise :func:`concner.jobs.incremental.plan_retrain` decides."""
    store = ctx.store
    if not store.acquire_retrain(run_id, ctx.owner):
        log.info("run %s of %s not started (not queued, or another retrain runs)", run_id, name)
        return "skipped"
    progress = RunProgress(ctx, run_id)
    full = full or store.get_run(run_id).force_full
    folder = resume_dir(ctx, name)
    interrupted = []

    def requeue() -> str:
        interrupted.append(True)  # keep the checkpoint: the re-queued run resumes from it
        follow, _ = store.request_run(name, reason="shutdown", full=full)
        return f"interrupted: the worker shut down; re-queued as run {follow}"

    try:
        with job_outcome(ctx, run_id, on_shutdown=requeue) as outcome, \
                LockKeeper(ctx, run_id, progress):
            outcome.status, outcome.model_version_id = _retrain(ctx, name, run_id, progress,
                                                                full, folder)
        if not interrupted and not progress.lock_lost:  # lock lost: the new owner's folder
            from concner.method.checkpoint import clear

            clear(folder)
    finally:
        follow = store.release_retrain(run_id)
        if follow is not None and not ctx.shutdown.is_set():
            ctx.enqueue_retrain(name, follow)
    return outcome.status


def active_model(store: Store, name: str):
    """:class:`concner.jobs.incremental.ActiveModel` of project ``name`` (what its active model
    learnt from, how many updates in a row made it, its config), or None."""
    from concner.jobs.incremental import ActiveModel

    mv = store.active_model_version(name)
    if mv is None:
        return None
    run = store.get_run(mv.run_id) if mv.run_id is not None else None
    if run is None or run.update_kind is None:  # trained before incremental updates
        return ActiveModel(mv.id, mv.version, None)
    return ActiveModel(mv.id, mv.version, store.trained_on(run.id),
                       depth=run.incremental_depth or 0, config=run.config,
                       label_counts=run.label_counts)


def _retrain(ctx: JobContext, name: str, run_id: int, progress: RunProgress, full: bool,
             folder: Path):
    from concner.jobs.incremental import plan_retrain

    progress.stage("snapshot")
    retry = lost_training(folder)
    snap = take_snapshot(ctx.store, name, as_of=retry.watermark if retry else None)
    if retry is not None:
        progress.log(f"retrying run {retry.run_id}'s training on the data it had (a checkpoint "
                     "of it is kept); what arrived since goes to the next retrain")
    remember_training(folder, run_id, snap.watermark)
    config = project_config(ctx.config, snap)
    ctx.store.record_snapshot(run_id, label_counts=snap.label_counts, config=config.to_dict(),
                              seed=config.training.seed)
    counts = snap.label_counts
    progress.log(f"snapshot: {counts['source']} source, {counts['translated']} translated, "
                 f"{counts['target']} target labelled sentences; {counts['unlabelled']} unlabelled")
    if not snap.source and not snap.target_gold:
        raise ConcnerError(f"project {name!r} has no labelled sentences to train on; import "
                           "labelled source sentences (concner project import) first")
    plan = plan_retrain(snap.label_versions, active_model(ctx.store, name), config,
                        force_full=full, label_counts=snap.label_counts)
    ctx.store.record_update(run_id, kind=plan.kind, reason=plan.reason, new=len(plan.new_ids),
                            replay=len(plan.replay_ids), depth=plan.depth,
                            base_model_version_id=plan.base_model_version_id,
                            trained_on=snap.label_versions)
    progress.log(f"{plan.kind} retrain: {plan.reason}")
    result, teacher = (_update(ctx, name, snap, plan, config, progress, folder)
                       if plan.kind == "incremental" else _full(snap, config, progress, folder))
    progress.stage("evaluate")
    reports = evaluate_dev(result.bundle, snap, result.dev_metrics,
                           batch_size=config.training.eval_batch_size,
                           device=config.training.device)
    progress._write(force=True)  # last chance to honour a cancel before publishing
    progress.stage("publish")
    published = ctx.registry.publish(name, result.bundle, run_id=run_id, mean_f1=mean_f1(reports),
                                     teacher=teacher,
                                     f1_by_lang={lang: r["f1"] for lang, r in reports.items()})
    ctx.store.add_metrics(run_id, "dev", reports, model_version_id=published.version.id)
    progress.state["promotion"] = published.reason  # the decision, for the Models page
    progress.log(f"model v{published.version.version}: "
                 f"{'promoted' if published.promoted else 'not promoted'} ({published.reason})")
    if published.promoted:
        ctx.after_promotion(name)
    if retry is not None and current_watermark(ctx.store, name) != snap.watermark:
        follow, _ = ctx.store.request_run(name, reason="new_labels")
        progress.log(f"data arrived while run {retry.run_id} was lost: queued run {follow} "
                     "to train on it")
    progress.stage("done")
    return "succeeded", published.version.id


#: beside the checkpoint in a project's resume folder: which run's training it is, and the
#: :class:`Watermark` of the data it trains on
TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class LostTraining:
    run_id: int
    watermark: Watermark


def remember_training(folder: Path, run_id: int, watermark: Watermark | None) -> None:
    """Record (atomically) what the training checkpointed into ``folder`` trains on, so that
    the run re-queued after a kill trains the same data and resumes, even when labels kept
    arriving meanwhile (a fresh snapshot would no longer match the checkpoint)."""
    if watermark is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{TRAINING_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"run_id": run_id, "watermark": watermark.to_dict()}), "utf-8")
    os.replace(tmp, folder / TRAINING_FILE)


def lost_training(folder: Path) -> LostTraining | None:
    """The training a killed run left in ``folder`` (a checkpoint and its data's watermark),
    or None when there is none to resume."""
    from concner.method.checkpoint import CHECKPOINT

    if not (folder / CHECKPOINT).is_file():
        return None
    try:
        data = json.loads((folder / TRAINING_FILE).read_text("utf-8"))
        mark = Watermark.from_dict(data.get("watermark"))
        return None if mark is None else LostTraining(int(data["run_id"]), mark)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _full(snap: Snapshot, config: Config, progress: RunProgress, folder: Path):
    """A fresh model on every labelled sentence, checkpointed into ``folder`` (resumed from
    it when it holds this run's checkpoint); returns ``(TrainResult, teacher)``."""
    from concner.active.ranking import needs_teacher
    from concner.method.training import planned_steps, train

    data = build_train_data(snap)
    progress.plan(planned_steps(config, data))
    result = train(config, data, callback=progress,
                   keep_teacher=needs_teacher(config.active), resume_dir=folder,
                   notify=progress.log)
    progress.kept(result.history)
    return result, result.teacher


def _update(ctx: JobContext, name: str, snap: Snapshot, plan, config: Config,
            progress: RunProgress, folder: Path):
    """An incremental update of the plan's base model, checkpointed into ``folder`` like
    :func:`_full`; returns ``(TrainResult, teacher)``.
    The teacher/student strategy keeps the base model's stage-1 teacher (an update does
    not distil, so it makes no new one)."""
    from concner.active.ranking import needs_teacher
    from concner.errors import ModelError
    from concner.jobs.incremental import build_incremental_data, incremental_config
    from concner.method.training import planned_steps, train

    base = ctx.store.get_model_version(plan.base_model_version_id)
    try:
        init = ctx.registry.load(base)  # train() moves its copy to the training device
        teacher = ctx.registry.load_teacher(base) if needs_teacher(config.active) else None
    except (ModelError, OSError) as exc:
        raise ModelError(f"cannot load v{base.version} to update it incrementally ({exc}); "
                         f"queue a full retrain: concner retrain {name} --full") from exc
    data = build_incremental_data(snap, plan, config)
    inc = incremental_config(config)
    progress.log(f"update: {len(plan.new_ids)} new + {len(plan.replay_ids)} replayed labelled "
                 f"sentences, {len(data.translations or [])} translations, "
                 f"{inc.training.epochs} epochs from v{base.version}, no distillation")
    progress.plan(planned_steps(inc, data))
    result = train(inc, data, init=init, callback=progress, resume_dir=folder,
                   notify=progress.log)
    progress.kept(result.history)
    return result, teacher


def maybe_request_retrain(store: Store, name: str, min_new_labels: int) -> int | None:
    """Queue a retrain when at least ``min_new_labels`` annotations arrived since the last
    run's snapshot (or there never was one). Returns the id of a newly queued run, or None
    (too few new labels, or a queued run already covers them).

    While a queued or running retrain has not recorded its snapshot, nothing is queued:
    that run will train on every label stored now, so a new run would repeat it with
    identical counts. The decision is only deferred: labels that arrive after the running
    retrain read its snapshot are counted against that snapshot on the next call."""
    if store.retrain_awaiting_snapshot(name) is not None:
        return None
    last = store.last_snapshot_count(name) or 0
    new = store.annotation_count(name) - last
    if new < min_new_labels:
        return None
    run_id, created = store.request_run(name, reason="new_labels")
    return run_id if created else None


def execute_evaluate(ctx: JobContext, name: str, run_id: int,
                     model_version_id: int | None) -> str:
    """Evaluate one model version, or with ``model_version_id=None`` every stored
    (non-deleted) version, on the project's current gold dev sentences (one snapshot).

    Each version's metrics rows belong to one evaluate run: the run itself for one version;
    for every version, one run per version (``config.part_of`` names this run), since a
    run holds one row per language. A run's ``label_counts`` are the counts the version
    was trained on, with the dev set it was evaluated on (``dev_by_lang``,
    ``dev_fingerprint``), and the version's ``mean_f1`` becomes the new mean, so a score
    on an older dev set is recognisable and promotion compares like with like."""
    store = ctx.store
    if not store.start_run(run_id, ctx.owner):
        return "skipped"
    progress = RunProgress(ctx, run_id)

    def requeue() -> str:  # the worker stops: a new run evaluates them again
        again, _ = store.request_evaluation(name, model_version_id, reason="shutdown",
                                            config=store.get_run(run_id).config)
        return f"interrupted: the worker shut down; re-queued as run {again}"

    with job_outcome(ctx, run_id, on_shutdown=requeue) as outcome:
        progress.stage("evaluate")
        snap = take_snapshot(store, name)
        if model_version_id is not None:
            outcome.model_version_id = model_version_id
            _evaluate_version(ctx, run_id, store.get_model_version(model_version_id), snap,
                              progress)
        else:
            _evaluate_every_version(ctx, name, run_id, snap, progress)
        outcome.status = "succeeded"
    return outcome.status


def _evaluate_version(ctx: JobContext, run_id: int, mv, snap: Snapshot,
                      progress: RunProgress) -> None:
    """Evaluate ``mv`` on ``snap``'s dev sentences into run ``run_id``'s metrics rows."""
    store = ctx.store
    counts = dict(store.get_run(mv.run_id).label_counts or {}) if mv.run_id is not None else {}
    counts.update({k: snap.label_counts[k] for k in ("dev_by_lang", "dev_fingerprint")})
    store.record_snapshot(run_id, label_counts=counts, config=store.get_run(run_id).config or {},
                          seed=0)
    reports = evaluate_dev(ctx.registry.load(mv), snap,
                           batch_size=ctx.config.training.eval_batch_size,
                           device=ctx.config.training.device)
    store.add_metrics(run_id, "dev", reports, model_version_id=mv.id)
    if reports:
        store.set_model_mean_f1(mv.id, mean_f1(reports))
    progress.log(f"v{mv.version}: mean dev F1 "
                 + (f"{100 * mean_f1(reports):.2f}" if reports else "n/a (no dev sentences)"))


def _evaluate_every_version(ctx: JobContext, name: str, run_id: int, snap: Snapshot,
                            progress: RunProgress) -> None:
    """One evaluate run per stored version (``config.part_of = run_id``); a version that
    cannot be evaluated fails its own run, and this one only when all of them failed."""
    store = ctx.store
    parent = store.get_run(run_id)
    versions = store.model_versions(name)
    progress.log(f"evaluating {len(versions)} model versions on dev set "
                 f"{snap.label_counts['dev_fingerprint']} ({_dev_text(snap)})")
    failed = []
    for mv in versions:
        progress._write(force=True)  # honour a cancel (or shutdown) of this run first
        child, _ = store.request_run(name, kind="evaluate", reason=parent.reason,
                                     model_version_id=mv.id, config={"part_of": run_id})
        store.start_run(child, ctx.owner)
        with job_outcome(ctx, child) as part:
            part.model_version_id = mv.id
            _evaluate_version(ctx, child, mv, snap, progress)
            part.status = "succeeded"
        if part.status != "succeeded":
            failed.append(f"v{mv.version} (run {child}: {(part.error or '').splitlines()[0]})")
    store.record_snapshot(run_id, label_counts={k: snap.label_counts[k] for k in (
        "dev_by_lang", "dev_fingerprint")}, config=parent.config or {}, seed=0)
    if failed:
        progress.log("could not evaluate " + "; ".join(failed))
    if versions and len(failed) == len(versions):
        raise ConcnerError(f"no model version of {name!r} could be evaluated: "
                           + "; ".join(failed))


def _dev_text(snap: Snapshot) -> str:
    counts = snap.label_counts.get("dev_by_lang") or {}
    return ", ".join(f"{n} {lang}" for lang, n in counts.items()) or "no dev sentences"


def execute_predict(ctx: JobContext, name: str, run_id: int, chunk: int = 256) -> str:
    """Predict every unlabelled target sentence (to correct) and every unlabelled source
    sentence (to label) with the active model, rank each pool with the project's
    ``active.strategy`` (:func:`concner.active.ranking.rank_pool`; the stage-1 teacher
    saved with the model serves the teacher/student strategy), and store tags, spans,
    uncertainty (mean word entropy) and the strategy's score and rank (its order to ask
    people, 1..n within each pool) per sentence.
    On success ``ctx.after_predict`` runs (the worker queues the Argilla sync)."""
    store = ctx.store
    if not store.start_run(run_id, ctx.owner):
        return "skipped"
    progress = RunProgress(ctx, run_id)
    with job_outcome(ctx, run_id) as outcome:
        bundle, mv = ctx.registry.load_active(name)
        outcome.model_version_id = mv.id
        snap = take_snapshot(store, name)
        pools = [("target", snap.unlabelled_target), ("source", snap.unlabelled_source)]
        ranker = _PoolRanker(ctx, bundle, mv, project_config(ctx.config, snap).active, progress,
                             chunk, total=sum(len(pool) for _, pool in pools))
        rows, strategy, done = [], None, []
        for role, pool in pools:
            if not pool:
                continue
            pool_rows, strategy = ranker.rank(pool)
            rows += pool_rows
            done.append(f"{len(pool)} {role}")
        store.save_predictions(mv.id, rows, strategy=strategy)
        progress.log(f"predicted {' and '.join(done) or 'no'} sentences with v{mv.version}"
                     + (f", ranked by {strategy}" if strategy else ""))
        outcome.status = "succeeded"
    if outcome.status == "succeeded" and not ctx.shutdown.is_set():
        ctx.after_predict(name)
    return outcome.status


class _PoolRanker:
    """Predicts a pool in chunks (with sentence embeddings when the strategy clusters
    them) and ranks it; the teacher is loaded once, on first need."""

    def __init__(self, ctx: JobContext, bundle, mv, active, progress: RunProgress, chunk: int,
                 total: int):
        from concner.method.inference import Predictor

        self.ctx, self.mv, self.active, self.progress, self.chunk = ctx, mv, active, progress, chunk
        tc = ctx.config.training
        self.predictor = Predictor(bundle, batch_size=tc.eval_batch_size, device=tc.device)
        self.done = 0
        progress.stage("predict", total=total)

    @functools.cached_property
    def teacher(self):
        """The stage-1 teacher's predictor when the strategy needs one and it was saved."""
        from concner.active.ranking import needs_teacher
        from concner.method.inference import Predictor

        loaded = self.ctx.registry.load_teacher(self.mv) if needs_teacher(self.active) else None
        if loaded is None:
            return None
        tc = self.ctx.config.training
        return Predictor(loaded, tc.eval_batch_size, tc.device)

    def _advance(self, n: int) -> None:
        self.done += n
        self.progress.state.update(step=self.done)
        self.progress._write(force=True)

    def rank(self, pool: list) -> tuple[list[tuple], str]:
        """``(rows for Store.save_predictions, strategy name)`` of one pool."""
        from concner.active.ranking import needs_representations, rank_pool

        # the diversity strategy clusters sentence embeddings: take them from this pass
        preds, embeddings = self.predictor.predict_in_chunks(
            pool, chunk=self.chunk, embeddings=needs_representations(self.active),
            on_chunk=self._advance)
        ranking = rank_pool(self.predictor, pool, preds, self.active,
                            seed=self.ctx.config.training.seed, teacher=self.teacher,
                            representations=embeddings)
        if ranking.note:
            self.progress.log(ranking.note)
        rows = [(s.meta["db_id"], list(p.tags),
                 [{"start": sp.start, "end": sp.end, "label": sp.label, "score": sp.score}
                  for sp in p.spans], float(p.mean_entropy), ranking.scores[s.id],
                 ranking.ranks[s.id]) for s, p in zip(pool, preds)]
        return rows, ranking.strategy


def execute_translate(ctx: JobContext, name: str, run_id: int) -> str:
    """Translate the labelled source sentences of ``name`` that have no usable translation
    into the run's target language yet, with the run's backend, and import the pairs in one
    transaction (see :mod:`concner.jobs.translate`). Returns the final status, or
    ``"skipped"`` when the run is no longer queued."""
    from concner.jobs.translate import run_translate

    return run_translate(ctx, name, run_id)
