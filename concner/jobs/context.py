"""What every job of the worker shares: its context, how a run ends, and its progress.

A job is a function of a :class:`JobContext` (store, registry, base config, worker id, a
shutdown event and the callbacks that queue follow-up jobs, see :mod:`concner.jobs.chain`),
so it runs the same inside the Huey consumer and in tests. :func:`job_outcome` finishes
a run whatever happens in its body; :class:`RunProgress` writes the run's progress and
honours cancel and shutdown; :class:`LockKeeper` keeps a retrain's lock alive;
:func:`project_config` is the configuration a project's jobs run with.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from concner.config import Config, config_from_dict
from concner.errors import ConcnerError, JobCancelled, WorkerShutdown
from concner.jobs.registry import ModelRegistry
from concner.store import Store
from concner.store.snapshot import Snapshot

log = logging.getLogger("concner.jobs.worker")
LOG_TAIL = 30
#: sub-folder of a project's checkpoint folder holding its retrain's resume checkpoint
RESUME_DIR = ".resume"


def _nothing(*args) -> None:
    """The default follow-up: none (a context built by hand queues nothing)."""


@dataclass
class JobContext:
    store: Store
    registry: ModelRegistry
    config: Config
    owner: str
    shutdown: threading.Event = field(default_factory=threading.Event)
    #: ``enqueue_retrain(project, run_id)``: put a queued retrain run on the queue
    enqueue_retrain: Callable[[str, int], None] = _nothing
    #: ``after_promotion(project)``: a retrain made its model the active one
    after_promotion: Callable[[str], None] = _nothing
    #: ``after_predict(project)``: the active model predicted and scored the pool
    after_predict: Callable[[str], None] = _nothing
    #: runs this process is executing now (shown on the worker's heartbeat row)
    current_runs: set = field(default_factory=set)
    #: ``enqueue_shards(run_id)``: put one shard runner of sharded run ``run_id`` on the queue
    #: (concner/jobs/shards.py); None: the shards run in the process that hands them out
    enqueue_shards: Callable[[int], None] | None = None


def bug_report(run_id: int, exc: Exception) -> str:
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
        outcome.status, outcome.error = "failed", bug_report(run_id, exc)
    finally:
        ctx.current_runs.discard(run_id)
        ctx.store.finish_run(run_id, outcome.status, outcome.error,
                             model_version_id=outcome.model_version_id)


def project_config(base: Config, snap: Snapshot, env: Mapping[str, str] | None = None) -> Config:
    """The base config overlaid with the project's saved training config, then with the
    ``CONCNER_*`` environment ``env`` (default: this process's; it overrides the project's
    settings as it overrides a TOML file), then with the project's languages, labels and
    encoder (facts of the project, which no setting overrides)."""
    data = base.to_dict()
    for section, values in (snap.training_config or {}).items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    data = config_from_dict(data, env=env).to_dict()
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
        self.write(force=True)

    def stage(self, name: str, total: int = 0) -> None:
        self.state.update(stage=name, step=0, total=total)
        self.write(force=True)

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
        self.write(force=changed or event.step >= event.total_steps)

    def plan(self, steps: dict[str, int]) -> None:
        """The training stages to come and their optimiser steps (the progress line's
        denominator; see :func:`concner.method.training.planned_steps`)."""
        self.state["plan"] = dict(steps)
        self.write(force=True)

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

    def write(self, force: bool = False) -> None:
        """Write the state to the run row (unless the last write is less than ``interval``
        seconds old and not ``force``), and honour a stop: raises :class:`WorkerShutdown`
        when the worker stops, :class:`JobCancelled` when the run's lock was taken over or
        someone cancelled the run (so ``write(force=True)`` is also the place to honour a
        cancel before a step that cannot be undone)."""
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
