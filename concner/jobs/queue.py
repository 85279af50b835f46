"""The job queue (Huey) and its jobs: thin wrappers over the job modules
(:mod:`concner.jobs.retrain`, :mod:`~concner.jobs.predict`, :mod:`~concner.jobs.evaluate`,
:mod:`~concner.jobs.translate`, and the sync hooks of :mod:`concner.jobs.sync_hooks`).

Nothing is read or built at import. :func:`config` reads the configuration on first use,
once per process, from ``CONCNER_CONFIG`` (a TOML file, optional) and the ``CONCNER_*``
environment; :func:`jobs` builds the process's Huey on first use and registers the tasks
on it once: ``SqliteHuey`` at ``services.queue_path`` by default, or ``RedisHuey`` when
``CONCNER_REDIS_URL`` (or ``services.redis_url``) is set so workers can run on other hosts.

Jobs (by their Huey names, which the queued messages carry): ``retrain(project, run_id,
full=False)`` (``full=True`` forces a full retrain instead of an incremental update),
``predict_pool(project, run_id)``, ``evaluate(project, run_id, model_version_id)``
(``None``: every stored version, in shards; :attr:`Jobs.evaluate_versions`),
``run_shards(run_id)`` (claim and run a sharded run's shards, :mod:`concner.jobs.shards`),
``translate(project, run_id)`` and ``sync(project)``; the ``request_*`` functions create the run row first (the
truth lives in the store, the queue message only wakes a worker) and are what the app and
the CLI call. ``sync`` calls the hooks the modules of ``services.sync_modules`` registered
(:data:`SYNC_HOOKS`; the Argilla integration registers one); without any it records that
no sync source is configured. What a finished job queues next is :mod:`concner.jobs.chain`'s
(a promotion queues ``predict_pool``, a finished prediction queues ``sync``). A periodic
task (``sync_all``) syncs every project; the worker's heartbeat runs :func:`tick`, which
applies the retrain policy, evaluates every stored model version when a dev set arrived
or changed (:mod:`concner.jobs.dev_refresh`), and re-queues work (runs and shards) whose
worker died.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from huey import RedisHuey, SqliteHuey, crontab

from concner.config import Config, load_config
from concner.errors import ConfigError, ServiceUnavailable
from concner.jobs.chain import WorkerChain
from concner.jobs.sync_hooks import SyncHooks, recheck_delay, run_sync

if TYPE_CHECKING:
    from concner.jobs.context import JobContext

log = logging.getLogger("concner.jobs.queue")

#: this process's sync hooks (the worker fills them with
#: :func:`concner.jobs.sync_hooks.load_sync_modules`)
SYNC_HOOKS = SyncHooks()

# -- per-process resources, each built on first use: "config", "jobs", "ctx" (the worker's
# job context; the app only enqueues) and "owner" ----------------------------------------
_process: dict = {}
_process_lock = threading.RLock()


def service_config() -> Config:
    return load_config(os.environ.get("CONCNER_CONFIG") or None)


def config() -> Config:
    """This process's configuration (:func:`service_config`, read on first use)."""
    with _process_lock:
        if "config" not in _process:
            _process["config"] = service_config()
        return _process["config"]


def make_huey(config: Config) -> SqliteHuey | RedisHuey:
    redis_url = os.environ.get("CONCNER_REDIS_URL") or config.services.redis_url
    if redis_url:
        return RedisHuey("concner", url=redis_url, utc=True)
    path = os.path.abspath(os.path.expanduser(config.services.queue_path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return SqliteHuey("concner", filename=path, utc=True, timeout=30)


#: where the jobs were defined before they moved here: a queued message names its job
#: ``<module of the function>.<name>``, so the jobs are registered under that module too
#: and messages an older version queued still run
OLD_MODULE = "concner.tasks"


class Jobs:
    """A Huey with the jobs registered on it; calling one of its tasks queues the job
    (``jobs().retrain(project, run_id)``), or runs it at once in immediate mode."""

    def __init__(self, config: Config):
        self.huey = make_huey(config)
        task = self.huey.task
        self.retrain = task(name="retrain")(retrain_job)
        self.predict_pool = task(name="predict_pool")(predict_pool_job)
        self.evaluate_versions = task(name="evaluate")(evaluate_versions_job)
        self.translate = task(name="translate")(translate_job)
        self.run_shards = task(name="run_shards")(run_shards_job)
        self.sync = task(name="sync")(sync_job)
        every = crontab(minute=f"*/{config.services.sync_every_minutes}")
        self.sync_all = self.huey.periodic_task(every, name="sync_all")(sync_all_job)
        for wrapper in (self.retrain, self.predict_pool, self.evaluate_versions,
                        self.translate, self.sync):
            task(name=wrapper.name)(_moved_from(OLD_MODULE, wrapper.func))


def _moved_from(module: str, func):
    """``func`` as a function of ``module`` (what Huey names its messages after)."""
    @functools.wraps(func)
    def job(*args, **kwargs):
        return func(*args, **kwargs)

    job.__module__ = module
    return job


def jobs() -> Jobs:
    """This process's Huey and its tasks (built, and the tasks registered, on first use)."""
    with _process_lock:
        if "jobs" not in _process:
            _process["jobs"] = Jobs(config())
        return _process["jobs"]


def context() -> JobContext:
    """The :class:`concner.jobs.context.JobContext` of this process (built on first use),
    whose callbacks follow :func:`worker_chain`."""
    from concner.jobs.context import JobContext
    from concner.jobs.registry import ModelRegistry
    from concner.store import Store

    with _process_lock:
        if "ctx" not in _process:
            cfg = config()
            store = Store(cfg.services.database_url)
            _process["ctx"] = JobContext(
                store=store, registry=ModelRegistry.from_config(store, cfg), config=cfg,
                owner=_process.get("owner") or f"{os.uname().nodename}:{os.getpid()}",
                enqueue_shards=lambda run_id: enqueue(jobs().run_shards, run_id),
                **worker_chain().callbacks())
        return _process["ctx"]


def worker_chain() -> WorkerChain:
    """The job chain (:mod:`concner.jobs.chain`) over this process's queue."""
    return WorkerChain(queue_retrain=lambda project, run_id: jobs().retrain(project, run_id),
                       queue_predict=lambda project: request_predict(context().store, project),
                       queue_sync=lambda project: jobs().sync(project),
                       can_sync=lambda: bool(SYNC_HOOKS))


def use_context(ctx: JobContext | None) -> JobContext | None:
    """Make ``ctx`` this process's job context (None: build one on next use); returns the
    context it replaces."""
    with _process_lock:
        previous = _process.pop("ctx", None)
        if ctx is not None:
            _process["ctx"] = ctx
        return previous


@contextmanager
def running_here(ctx: JobContext) -> Iterator[Jobs]:
    """Until the block ends, every job runs at once in this process where it is queued
    (Huey's immediate mode), with ``ctx`` as its context; then the previous context and
    mode are back (tests, one-off runs)."""
    queue = jobs()
    saved_ctx, saved_mode = use_context(ctx), queue.huey.immediate
    queue.huey.immediate = True
    try:
        yield queue
    finally:
        queue.huey.immediate = saved_mode
        use_context(saved_ctx)


def set_owner(owner: str) -> None:
    """Name this process in lock rows and run rows (the worker calls it at start)."""
    _process["owner"] = owner


def enqueue(task, *args) -> None:
    """Queue ``task(*args)`` (a task of :func:`jobs`); raises :class:`ServiceUnavailable`
    when the storage behind the queue is down."""
    try:
        task(*args)
    except Exception as exc:  # the storage behind the queue is down
        raise ServiceUnavailable(f"cannot enqueue {task.name}: {exc}; is the queue reachable "
                                 f"(Redis at CONCNER_REDIS_URL or {config().services.queue_path})?") \
            from exc


def sync(project: str):
    """Queue a sync of ``project`` (the app's Sync button)."""
    return jobs().sync(project)


# -- what a worker runs for each message -----------------------------------------------
def retrain_job(project: str, run_id: int, full: bool = False) -> str:
    from concner.jobs.retrain import execute_retrain

    return execute_retrain(context(), project, run_id, full=full)


def predict_pool_job(project: str, run_id: int) -> str:
    from concner.jobs.predict import execute_predict

    return execute_predict(context(), project, run_id)


def evaluate_versions_job(project: str, run_id: int, model_version_id: int | None) -> str:
    from concner.jobs.evaluate import execute_evaluate

    return execute_evaluate(context(), project, run_id, model_version_id)


def translate_job(project: str, run_id: int) -> str:
    from concner.jobs.translate import run_translate

    return run_translate(context(), project, run_id)


def run_shards_job(run_id: int) -> str:
    from concner.jobs.shards import run_shards

    return run_shards(context(), run_id)


def sync_job(project: str, recheck: bool = False) -> list[dict]:
    """Sync ``project``. When a hook could not read everything yet (Argilla answers
    committed within its clock lag, not yet searchable), one follow-up sync is scheduled
    for when it can, so a "Sync now" right after the answers still takes them promptly. A
    follow-up (``recheck``) schedules no other: while people keep answering, the periodic
    sync takes the rest."""
    outcomes = run_sync(context().store, project, config(), SYNC_HOOKS)
    delay = recheck_delay(outcomes)
    if delay is not None and not recheck:
        jobs().sync.schedule(args=(project, True), delay=delay)
    return outcomes


def sync_all_job() -> None:
    ctx, queue = context(), jobs()
    for project in ctx.store.list_projects():
        queue.sync(project.name)


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
    retrains: dict[int, str] = {}
    dev_evaluations = 0
    # one liveness judge (concner.jobs.liveness): a worker SIGKILLed on this host is known dead
    # at once by its pid, without waiting lock_stale_seconds for its heartbeat to go stale
    judged = judge_all(store.workers(), timeout_s=services.lock_stale_seconds)
    dead = {w.worker_id for w in judged if w.state == "dead"}
    recovered = store.recover_stale(services.lock_stale_seconds, dead_owners=dead)
    for rec in recovered:
        log.warning("run %s of %s lost its worker; re-queued as run %s", rec.lost_run_id,
                    rec.project, rec.queued_run_id)
        retrains[rec.queued_run_id] = rec.project
    for project in store.list_projects():
        run_id = auto_retrain(store, project.name, ctx.config)  # switch + readiness + policy
        if run_id is not None:
            retrains[run_id] = project.name
    for project, run_id in store.pending_retrains(0 if startup else services.lock_stale_seconds):
        retrains[run_id] = project
    for run_id, project in retrains.items():
        ctx.enqueue_retrain(project, run_id)
    for project in store.list_projects():  # a new or changed dev set: score every version
        run_id = maybe_request_dev_evaluation(store, project.name)
        if run_id is not None:
            enqueue(jobs().evaluate_versions, project.name, run_id, None)
            dev_evaluations += 1
    lost = {w.worker_id for w in judged if not w.alive}
    waiting = store.recover_orphaned_jobs(lost)
    for project, run_id, kind, _ in waiting:
        log.warning("%s run of %s lost its worker; re-queued as run %s", kind, project, run_id)
    stale = 0 if startup else services.lock_stale_seconds
    waiting += [job for job in store.stale_queued_jobs(stale)
                if _not_woken_within(job[1], stale)]  # at most once per interval each
    for project, run_id, kind, model_version_id in waiting:
        _requeue(kind, project, run_id, model_version_id)
    sharded = requeue_shards(store, lost, 0 if startup else services.lock_stale_seconds)
    return {"recovered": len(recovered),
            "enqueued": len(retrains) + len(waiting) + dev_evaluations + sharded}


def _not_woken_within(run_id: int, seconds: float) -> bool:
    """True (and the run counts as woken now) unless this process put run ``run_id`` on
    the queue again within the last ``seconds``: a tick on every heartbeat would otherwise
    pile up messages for a run that waits behind busy workers."""
    now, woken = time.monotonic(), _process.setdefault("woken", {})
    if seconds > 0 and now - woken.get(run_id, -seconds - 1) <= seconds:
        return False
    woken[run_id] = now
    return True


def requeue_shards(store, lost_owners, idle_seconds: float) -> int:
    """Put the shards lost workers held back on the queue (failing a run whose shard has
    used up its attempts, :class:`concner.errors.ShardFailed`) and wake every sharded run
    with shards waiting and no runner seen for ``idle_seconds``: one runner task each, and
    an idle run at most once per ``idle_seconds`` from this process (while every worker is
    busy with other work, a tick on each heartbeat would pile runner messages up).
    Returns the number of runner tasks queued."""
    released = store.release_lost_shards(lost_owners)
    for failed in released.failed:
        log.error("%s", failed)
        store.finish_run(failed.run_id, "failed", str(failed))
    idle = {run_id for run_id in store.idle_sharded_runs(idle_seconds)
            if _not_woken_within(run_id, idle_seconds)}
    for run_id in released.requeued_runs:  # woken now: the idle check waits for them too
        _not_woken_within(run_id, 0)
    wake = set(released.requeued_runs) | idle
    wake -= {failed.run_id for failed in released.failed}
    for run_id in sorted(wake):
        log.warning("sharded run %s has shards waiting; queued a runner", run_id)
        enqueue(jobs().run_shards, run_id)
    return len(wake)


def _requeue(kind: str, project: str, run_id: int, model_version_id: int | None) -> None:
    """Put a queued non-retrain run's message on the queue again."""
    queue = jobs()
    if kind == "predict":
        enqueue(queue.predict_pool, project, run_id)
    elif kind == "evaluate":
        enqueue(queue.evaluate_versions, project, run_id, model_version_id)
    elif kind == "translate":
        enqueue(queue.translate, project, run_id)
    else:
        raise ConfigError(f"run {run_id} has unknown kind {kind!r}")


# -- what the app and the CLI call -----------------------------------------------------
def request_retrain(store, project: str, reason: str = "on_demand", *,
                    full: bool = False) -> tuple[int, bool]:
    """Queue a retrain (coalescing with one already queued); returns ``(run_id, created)``.
    ``full=True`` forces a full retrain (a queued retrain it joins becomes full too);
    otherwise the worker updates the active model incrementally when few labels are new
    (:mod:`concner.jobs.incremental`)."""
    run_id, created = store.request_run(project, reason=reason, full=full)
    if created:
        enqueue(jobs().retrain, project, run_id, full)
    return run_id, created


def request_predict(store, project: str) -> int:
    run_id, _ = store.request_run(project, kind="predict")
    enqueue(jobs().predict_pool, project, run_id)
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
        enqueue(jobs().evaluate_versions, project, run_id, model_version_id)
    return run_id


def request_translate(store, project: str, *, backend: str, target_lang: str,
                      **backend_options) -> int:
    """Queue a translation of the project's labelled source sentences into ``target_lang``
    (only those without a usable translation yet); returns the run id.

    ``backend_options`` are the backend's settings (apertium: ``pair``; dictionary:
    ``share``, ``seed``, ``directory``; hf: ``model``; file: ``translations``); they are
    checked here, so a mistake is reported to the caller instead of failing the run later.
    """
    from concner.translation.requests import check_project_request

    _, options = check_project_request(store, project, backend, target_lang, backend_options)
    run_id, _ = store.request_run(project, kind="translate", config={
        "backend": backend, "target_lang": target_lang, "options": options})
    enqueue(jobs().translate, project, run_id)
    return run_id
