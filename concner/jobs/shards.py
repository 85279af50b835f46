"""Sharded runs: one run's work spread over every worker that takes from the queue.

A job that can be cut into independent pieces describes them with a :class:`ShardWork`
registered under a kind (:func:`register_work`; today: ``evaluate``, every model version
on the dev sets, :mod:`concner.jobs.evaluate`, and ``predict``, the pools in id
ranges, :mod:`concner.jobs.predict`):

- ``prepare(ctx, run) -> [payload, ...]`` (JSON dicts): runs once, in the worker that
  started the run; each payload becomes one shard (:mod:`concner.store.shards`);
- ``run_one(ctx, run, payload) -> result`` (a JSON dict): runs once per shard, in whichever
  worker claimed it, and must not write the run's outcome itself (a worker killed between
  its writes and the shard's finish would leave them behind for the retry to repeat); the
  result is stored with the shard's finish, which is refused if done twice;
- ``complete(ctx, run, results)``: ``results`` in shard order; runs exactly once, in the
  worker that found every shard done (:meth:`concner.store.Store.take_completion`), and
  records the run's outcome from the results.

:func:`hand_out` runs ``prepare`` and puts ``services.shard_workers`` runner tasks on the
queue (:func:`run_shards`, the ``run_shards`` Huey task of :mod:`concner.jobs.queue`), or
runs the shards in this process when the context has no queue (a context built by hand).
The worker's tick puts a lost worker's shards back on the queue
(:meth:`concner.store.Store.release_lost_shards`) and wakes idle sharded runs.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from concner.errors import ConcnerError, ConfigError, WorkerShutdown
from concner.jobs.context import JobContext, RunProgress, bug_report, job_outcome
from concner.store.model_versions import Run

log = logging.getLogger("concner.jobs.shards")


@dataclass(frozen=True)
class ShardWork:
    """How one kind of work is cut, done piece by piece and put together (module doc)."""

    prepare: Callable[[JobContext, Run], list[dict]]
    run_one: Callable[[JobContext, Run, dict], dict]
    complete: Callable[[JobContext, Run, list[dict]], None]


#: the registered kinds of sharded work (kind -> :class:`ShardWork`)
WORK: dict[str, ShardWork] = {}
#: the module that registers each built-in kind (imported on first use of the kind)
BUILT_IN = {"evaluate": "concner.jobs.evaluate", "predict": "concner.jobs.predict"}


def register_work(kind: str, work: ShardWork) -> None:
    """Register (or replace) the sharded work of ``kind``."""
    WORK[kind] = work


def work_of(kind: str) -> ShardWork:
    """The registered :class:`ShardWork` of ``kind`` (a built-in kind's module is imported
    first); raises :class:`ConfigError` for an unknown kind."""
    if kind not in WORK and kind in BUILT_IN:
        importlib.import_module(BUILT_IN[kind])
    if kind not in WORK:
        raise ConfigError(f"no sharded work of kind {kind!r} is registered (known: "
                          f"{', '.join(sorted(WORK)) or 'none'}); the module that defines it "
                          "must call concner.jobs.shards.register_work")
    return WORK[kind]


def hand_out(ctx: JobContext, run_id: int, kind: str,
             options: Mapping[str, Any] | None = None) -> str:
    """Cut started run ``run_id`` into shards with ``kind``'s ``prepare`` and queue the
    runners (``ctx.enqueue_shards``, ``services.shard_workers`` times, at most one per
    shard); without a queue, run them here. ``options`` (JSON values) are added to the
    run's config first, where ``prepare`` and every shard read them. Returns the run's
    status afterwards (``running`` while queued runners work on it)."""
    store = ctx.store
    work = work_of(kind)
    if options:
        store.merge_run_config(run_id, options)
    try:
        payloads = work.prepare(ctx, store.get_run(run_id))
    except ConcnerError as exc:
        store.finish_run(run_id, "failed", str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - a bug: record it on the run
        store.finish_run(run_id, "failed", bug_report(run_id, exc))
        return "failed"
    n = store.hand_to_shards(run_id, kind, payloads)
    runners = min(max(n, 1), ctx.config.services.shard_workers)
    if ctx.enqueue_shards is None or n == 0:
        run_shards(ctx, run_id)
    else:
        for _ in range(runners):
            ctx.enqueue_shards(run_id)
    return store.get_run(run_id).status


def run_shards(ctx: JobContext, run_id: int) -> str:
    """Claim and run run ``run_id``'s queued shards until none is left (or the worker
    stops), then end the run if every shard is done and no other worker took that. Returns
    what this runner did: ``done k`` shards, then ``completed``/``cancelled``, or
    ``failed``/``interrupted``."""
    store = ctx.store
    done = 0
    ctx.current_runs.add(run_id)
    try:
        while not ctx.shutdown.is_set():
            shard = store.claim_shard(run_id, ctx.owner)
            if shard is None:
                break
            try:  # an unknown kind counts as a failed attempt too: the shard is not kept
                result = work_of(shard.kind).run_one(ctx, store.get_run(run_id), shard.payload)
            except WorkerShutdown:
                store.release_shard(shard.id, ctx.owner)
                return f"done {done}; interrupted"
            except Exception as exc:
                log.exception("run %s: shard %s (attempt %s) failed", run_id, shard.index,
                              shard.attempts)
                gave_up = store.retry_shard(shard.id, ctx.owner,
                                            f"{type(exc).__name__}: {exc}")
                if gave_up is not None:
                    store.finish_run(run_id, "failed", str(gave_up))
                    return f"done {done}; failed"
                continue
            if store.finish_shard(shard.id, ctx.owner, result):
                done += 1
    finally:
        ctx.current_runs.discard(run_id)
    return f"done {done}; " + complete_if_last(ctx, run_id)


def complete_if_last(ctx: JobContext, run_id: int) -> str:
    """End run ``run_id`` here if it is this worker's turn (every shard done, or a cancel
    with no shard held) and no other worker took it: ``completed``, ``cancelled`` or
    ``waiting`` (not this worker's to end)."""
    store = ctx.store
    verdict = store.take_completion(run_id, ctx.owner)
    if verdict == "cancel":
        store.finish_run(run_id, "cancelled", "cancelled by user")
        return "cancelled"
    if verdict != "complete":
        return "waiting"
    with job_outcome(ctx, run_id) as outcome:
        run = store.get_run(run_id)
        shards = store.shards(run_id)
        kinds = {s.kind for s in shards}
        kind = kinds.pop() if len(kinds) == 1 else run.kind
        work_of(kind).complete(ctx, run, [dict(s.result or {}) for s in shards])
        outcome.status = "succeeded"
        outcome.model_version_id = run.model_version_id
    return "completed"


def shared_progress(ctx: JobContext, run: Run) -> RunProgress:
    """A :class:`RunProgress` of ``run`` that continues the log written so far (several
    workers write one sharded run's log, one after another)."""
    progress = RunProgress(ctx, run.id)
    progress.state.update(run.progress or {})
    progress.state["log"] = list(progress.state.get("log") or [])
    return progress
