"""The job queue (Huey) and its jobs: thin wrappers over :mod:`concner.jobs.runner`.

The queue is ``SqliteHuey`` at ``services.queue_path`` by default, or ``RedisHuey`` when
``CONCNER_REDIS_URL`` (or ``services.redis_url``) is set so workers can run on other hosts.
The configuration is read once, at import, from ``CONCNER_CONFIG`` (a TOML file, optional)
and the ``CONCNER_*`` environment.

Jobs: ``retrain(project, run_id, full=False)`` (``full=True`` forces a full retrain
instead of an incremental update), ``predict_pool(project, run_id)``,
``evaluate(project, run_id, model_version_id)`` (``None``: every stored version),
``translate(project, run_id)`` and
``sync(project)``; the ``request_*``
functions create the run row first (the truth lives in the store, the queue message only
wakes a worker) and are what the app and the CLI call. ``sync`` calls the hooks registered
with :func:`register_sync_hook` (the Argilla integration registers one); without any it
records that no sync source is configured. A promotion queues ``predict_pool``, and a
finished prediction queues ``sync`` (so Argilla gets the new model's suggestions in the
new active-learning order). A periodic task syncs every project, applies
the retrain policy, evaluates every stored model version when a dev set arrived or changed
(:mod:`concner.jobs.dev_refresh`), and re-queues work whose worker died.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from huey import RedisHuey, SqliteHuey, crontab

from concner.config import Config, load_config
from concner.errors import ConcnerError, ConfigError, ServiceUnavailable

log = logging.getLogger("concner.jobs.queue")


@dataclass(frozen=True)
class SyncReport:
    """What one sync hook did for one project (recorded in ``sync_state``)."""

    dataset: str
    n_new: int = 0
    cursor: str | None = None
    message: str = ""


#: ``hook(store, project_name, config) -> list[SyncReport]``
SyncHook = Callable[..., list]
_SYNC_HOOKS: dict[str, SyncHook] = {}
NO_SYNC_DATASET = "(none)"


def register_sync_hook(name: str, hook: SyncHook) -> None:
    """Register ``hook`` under ``name`` (registering the same name again replaces it)."""
    _SYNC_HOOKS[name] = hook


def sync_hooks() -> dict[str, SyncHook]:
    return dict(_SYNC_HOOKS)


def service_config() -> Config:
    return load_config(os.environ.get("CONCNER_CONFIG") or None)


def make_huey(config: Config) -> SqliteHuey | RedisHuey:
    redis_url = os.environ.get("CONCNER_REDIS_URL") or config.services.redis_url
    if redis_url:
        return RedisHuey("concner", url=redis_url, utc=True)
    path = os.path.abspath(os.path.expanduser(config.services.queue_path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return SqliteHuey("concner", filename=path, utc=True, timeout=30)


CONFIG = service_config()
huey = make_huey(CONFIG)

# -- per-process resources (the worker's; the app only enqueues) -----------------------
_resources: dict = {}
_resources_lock = threading.Lock()


def context():
    """The :class:`concner.jobs.runner.JobContext` of this process (built on first use)."""
    from concner.jobs.registry import ModelRegistry
    from concner.jobs.runner import JobContext
    from concner.store import Store

    with _resources_lock:
        if "ctx" not in _resources:
            store = Store(CONFIG.services.database_url)
            _resources["ctx"] = JobContext(
                store=store, registry=ModelRegistry.from_config(store, CONFIG), config=CONFIG,
                owner=_resources.get("owner") or f"{os.uname().nodename}:{os.getpid()}",
                enqueue_retrain=lambda project, run_id: retrain(project, run_id),
                # a promotion re-predicts and re-scores the pool first; the sync follows the
                # prediction, so Argilla gets the new model's suggestions in the new order
                after_promotion=predict_after_promotion, after_predict=sync_after_predict)
        return _resources["ctx"]


def predict_after_promotion(project: str) -> None:
    """A new model became active: queue a pool prediction (which scores the pool)."""
    request_predict(context().store, project)


def sync_after_predict(project: str) -> None:
    """The active model predicted the pool: queue a sync (new suggestions, new order)."""
    if _SYNC_HOOKS:
        sync(project)


def set_owner(owner: str) -> None:
    """Name this process in lock rows and run rows (the worker calls it at start)."""
    _resources["owner"] = owner


def _enqueue(task, *args) -> None:
    try:
        task(*args)
    except Exception as exc:  # the storage behind the queue is down
        raise ServiceUnavailable(f"cannot enqueue {task.name}: {exc}; is the queue reachable "
                                 f"(Redis at CONCNER_REDIS_URL or {CONFIG.services.queue_path})?") \
            from exc


# -- jobs ------------------------------------------------------------------------------
@huey.task(name="retrain")
def retrain(project: str, run_id: int, full: bool = False) -> str:
    from concner.jobs.runner import execute_retrain

    return execute_retrain(context(), project, run_id, full=full)


@huey.task(name="predict_pool")
def predict_pool(project: str, run_id: int) -> str:
    from concner.jobs.runner import execute_predict

    return execute_predict(context(), project, run_id)


@huey.task(name="evaluate")
def evaluate(project: str, run_id: int, model_version_id: int | None) -> str:
    from concner.jobs.runner import execute_evaluate

    return execute_evaluate(context(), project, run_id, model_version_id)


@huey.task(name="translate")
def translate(project: str, run_id: int) -> str:
    from concner.jobs.runner import execute_translate

    return execute_translate(context(), project, run_id)


@huey.task(name="sync")
def sync(project: str) -> list[dict]:
    return run_sync(context().store, project, CONFIG)


def run_sync(store, project: str, config: Config) -> list[dict]:
    """Call every registered sync hook for ``project`` and record its outcome."""
    if not _SYNC_HOOKS:
        store.set_sync_state(project, NO_SYNC_DATASET, status="unconfigured",
                             message="no sync source is configured (set services.sync_modules)")
        return []
    out = []
    for name, hook in sorted(_SYNC_HOOKS.items()):
        try:
            reports = hook(store, project, config) or []
        except ConcnerError as exc:
            store.set_sync_state(project, name, status="failed", message=str(exc))
            out.append({"hook": name, "error": str(exc)})
            continue
        for rep in reports:
            store.set_sync_state(project, rep.dataset, status="ok", cursor=rep.cursor,
                                 message=rep.message or f"{rep.n_new} new labels")
            out.append({"hook": name, "dataset": rep.dataset, "n_new": rep.n_new})
    return out


def tick(ctx=None, *, startup: bool = False) -> dict:
    """Housekeeping the worker runs on every heartbeat: fail and re-queue retrains whose
    worker died (stale lock), apply the automatic-retraining rule to every project (its
    switch, its readiness and the new-labels policy: :mod:`concner.jobs.autoretrain`), and
    re-enqueue queued runs of every kind that have waited longer than
    ``services.lock_stale_seconds`` without a worker taking them (all of them at
    ``startup``)."""
    from concner.jobs.autoretrain import auto_retrain
    from concner.jobs.dev_refresh import maybe_request_dev_evaluation
    from concner.jobs.liveness import judge_all

    ctx = ctx or context()
    store, services = ctx.store, ctx.config.services
    enqueue: dict[int, str] = {}
    dev_evaluations = 0
    # one liveness judge (concner.jobs.liveness): a worker SIGKILLed on this host is known dead
    # at once by its pid, without waiting lock_stale_seconds for its heartbeat to go stale
    judged = judge_all(store.workers(), timeout_s=services.lock_stale_seconds)
    dead = {w.worker_id for w in judged if w.state == "dead"}
    recovered = store.recover_stale(services.lock_stale_seconds, dead_owners=dead)
    for rec in recovered:
        log.warning("run %s of %s lost its worker; re-queued as run %s", rec.lost_run_id,
                    rec.project, rec.queued_run_id)
        enqueue[rec.queued_run_id] = rec.project
    for project in store.list_projects():
        run_id = auto_retrain(store, project.name, ctx.config)  # switch + readiness + policy
        if run_id is not None:
            enqueue[run_id] = project.name
    for project, run_id in store.pending_retrains(0 if startup else services.lock_stale_seconds):
        enqueue[run_id] = project
    for run_id, project in enqueue.items():
        ctx.enqueue_retrain(project, run_id)
    for project in store.list_projects():  # a new or changed dev set: score every version
        run_id = maybe_request_dev_evaluation(store, project.name)
        if run_id is not None:
            _enqueue(evaluate, project.name, run_id, None)
            dev_evaluations += 1
    lost = {w.worker_id for w in judged if not w.alive}
    jobs = store.recover_orphaned_jobs(lost)
    for project, run_id, kind, _ in jobs:
        log.warning("%s run of %s lost its worker; re-queued as run %s", kind, project, run_id)
    jobs += store.stale_queued_jobs(0 if startup else services.lock_stale_seconds)
    for project, run_id, kind, model_version_id in jobs:
        _requeue(kind, project, run_id, model_version_id)
    return {"recovered": len(recovered),
            "enqueued": len(enqueue) + len(jobs) + dev_evaluations}


def _requeue(kind: str, project: str, run_id: int, model_version_id: int | None) -> None:
    """Put a queued non-retrain run's message on the queue again."""
    if kind == "predict":
        _enqueue(predict_pool, project, run_id)
    elif kind == "evaluate":
        _enqueue(evaluate, project, run_id, model_version_id)
    elif kind == "translate":
        _enqueue(translate, project, run_id)
    else:
        raise ConfigError(f"run {run_id} has unknown kind {kind!r}")


@huey.periodic_task(crontab(minute=f"*/{CONFIG.services.sync_every_minutes}"), name="sync_all")
def sync_all() -> None:
    ctx = context()
    for project in ctx.store.list_projects():
        sync(project.name)


# -- what the app and the CLI call -----------------------------------------------------
def request_retrain(store, project: str, reason: str = "on_demand", *,
                    full: bool = False) -> tuple[int, bool]:
    """Queue a retrain (coalescing with one already queued); returns ``(run_id, created)``.
    ``full=True`` forces a full retrain (a queued retrain it joins becomes full too);
    otherwise the worker updates the active model incrementally when few labels are new
    (:mod:`concner.jobs.incremental`)."""
    run_id, created = store.request_run(project, reason=reason, full=full)
    if created:
        _enqueue(retrain, project, run_id, full)
    return run_id, created


def request_predict(store, project: str) -> int:
    run_id, _ = store.request_run(project, kind="predict")
    _enqueue(predict_pool, project, run_id)
    return run_id


def request_evaluate(store, project: str, model_version_id: int | None) -> int:
    """Queue an evaluation of one model version (``None``: of every stored version) on the
    current dev sets; joins one already queued for the same version(s). Returns its id."""
    config = None
    if model_version_id is None:
        dev = store.dev_set(project)
        config = {"dev_fingerprint": dev.fingerprint, "dev_by_lang": dev.counts}
    run_id, created = store.request_evaluation(project, model_version_id, config=config)
    if created:
        _enqueue(evaluate, project, run_id, model_version_id)
    return run_id


def request_translate(store, project: str, *, backend: str, target_lang: str,
                      **backend_options) -> int:
    """Queue a translation of the project's labelled source sentences into ``target_lang``
    (only those without a usable translation yet); returns the run id.

    ``backend_options`` are the backend's settings (apertium: ``pair``; dictionary:
    ``share``, ``seed``, ``directory``; hf: ``model``; file: ``translations``); they are
    checked here, so a mistake is reported to the caller instead of failing the run later.
    """
    from concner.jobs.translate import check_project_request

    _, options = check_project_request(store, project, backend, target_lang, backend_options)
    run_id, _ = store.request_run(project, kind="translate", config={
        "backend": backend, "target_lang": target_lang, "options": options})
    _enqueue(translate, project, run_id)
    return run_id


def load_sync_modules(config: Config) -> None:
    """Import the modules named in ``services.sync_modules`` (they register sync hooks)."""
    for name in config.services.sync_modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"services.sync_modules: cannot import {name!r}: {exc}") from exc
