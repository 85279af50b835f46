"""The ``retrain`` job, and the policy that queues one when enough labels arrived.

:func:`execute_retrain` takes a :class:`concner.jobs.context.JobContext`, like every job.
A retrain:

1. takes the project's retrain lock (at most one per project; others coalesce),
2. snapshots the store and records the label counts it saw (source, translated, target),
3. plans a full retrain or an incremental update of the active model
   (:func:`concner.jobs.incremental.plan_retrain`) and records the plan on the run: its kind,
   why, and the labelled sentences (with label versions) the new model has learnt from,
4. trains with :func:`concner.method.training.train` (an update warm-starts from the active
   model), writing progress and honouring cancel, and checkpoints every epoch into the
   project's resume folder (:func:`concner.jobs.context.resume_dir`): a run re-queued
   after its worker died or shut down resumes from the last finished epoch when it
   trains on the same snapshot and config (it says so in its log: "resumed from stage 1 epoch 2 of 3"),
5. evaluates every target language on its gold dev sentences, one metrics row each,
6. publishes the checkpoint (:class:`concner.jobs.registry.ModelRegistry` decides promotion;
   on promotion ``ctx.after_promotion`` runs: what follows is :mod:`concner.jobs.chain`'s),
7. deletes the resume folder when the run finished (succeeded, failed or cancelled; not
   when it was interrupted by a shutdown, nor when another worker took its lock over),
   releases the lock and enqueues the coalesced follow-up run, if any.

A run killed mid-training leaves a memo beside its checkpoint (:func:`remember_training`)
so that its re-queued run trains the same data and resumes. :func:`maybe_request_retrain`
is the new-labels policy (:mod:`concner.jobs.autoretrain` applies it).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from concner.config import Config
from concner.errors import ConcnerError
from concner.jobs.context import (
    JobContext,
    LockKeeper,
    RunProgress,
    job_outcome,
    project_config,
    resume_dir,
)
from concner.jobs.evaluate import evaluate_dev, mean_f1
from concner.store import Store
from concner.store.snapshot import Snapshot, Watermark, current_watermark, take_snapshot

log = logging.getLogger("concner.jobs.worker")


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
    progress.write(force=True)  # last chance to honour a cancel before publishing
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


def new_training_labels(store: Store, name: str) -> int:
    """Label versions stored since the last retrain's snapshot, dev sentences left out: a
    new or changed dev set is evaluated (:mod:`concner.jobs.dev_refresh`), not trained on.
    A snapshot from before ``training_annotations`` was recorded is compared by the total,
    as then."""
    last = store.last_snapshot_counts(name) or {}
    if "training_annotations" in last:
        return store.annotation_count(name, training_only=True) - int(last["training_annotations"])
    return store.annotation_count(name) - int(last.get("annotations", 0))


def maybe_request_retrain(store: Store, name: str, min_new_labels: int) -> int | None:
    """Queue a retrain when at least ``min_new_labels`` training labels arrived since the last
    run's snapshot (or there never was one). Returns the id of a newly queued run, or None
    (too few new labels, or a queued run already covers them).

    While a queued or running retrain has not recorded its snapshot, nothing is queued:
    that run will train on every label stored now, so a new run would repeat it with
    identical counts. The decision is only deferred: labels that arrive after the running
    retrain read its snapshot are counted against that snapshot on the next call."""
    if store.retrain_awaiting_snapshot(name) is not None:
        return None
    new = new_training_labels(store, name)
    if new < min_new_labels:
        return None
    run_id, created = store.request_run(name, reason="new_labels")
    return run_id if created else None
