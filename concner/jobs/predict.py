"""The ``predict_pool`` job: the active model predicts and ranks the unlabelled pools, in
shards that every worker on the queue shares (:mod:`concner.jobs.shards`).

:func:`execute_predict` hands the run to shards (:data:`SHARDED_PREDICTION`):

- ``prepare`` pins the active model version, the project's ``[active]`` settings and the
  pools as they are now (``pool_bound``) on the run's config (``config["pinned"]``, read
  by every shard and by ``complete``), and cuts each pool (unlabelled target sentences to
  correct, unlabelled source sentences to label) into id ranges of
  ``services.pool_shard_sentences`` (:meth:`concner.store.Store.pool_boundaries`): a
  shard's payload is only its pool and range;
- each shard streams its range ``chunk`` sentences at a time and predicts, scores and
  stores every sentence (:class:`concner.jobs.pool_scoring.PoolScorer`; a stored
  prediction of the same version and strategy from the same text is kept), and returns
  only ids, scores and lengths;
- ``complete`` orders each pool from those scores
  (:func:`concner.active.pool_order.pool_order`, the order
  :func:`concner.active.ranking.rank_pool` gives the whole pool at once) and writes the
  ranks in one UPDATE; then ``ctx.after_predict`` runs (:mod:`concner.jobs.chain`).

A shard whose worker died is predicted again by another; the rows it had stored are kept
(same version, strategy and text), so nothing is predicted twice and nothing is lost.
"""

from __future__ import annotations

import dataclasses

from concner.config import ActiveConfig
from concner.errors import ModelError, StaleRun, WorkerShutdown
from concner.jobs.context import JobContext, project_config
from concner.jobs.pool_scoring import scorer_for
from concner.jobs.shards import ShardWork, hand_out, register_work, shared_progress
from concner.store.model_versions import Run
from concner.store.pool_stream import POOL_ROLES
from concner.store.snapshot import project_facts

#: sentences predicted at a time (a chunk's arrays are dropped before the next is read)
CHUNK = 256


def execute_predict(ctx: JobContext, name: str, run_id: int, chunk: int = CHUNK) -> str:
    """Predict every unlabelled target sentence (to correct) and every unlabelled source
    sentence (to label) with the active model, rank each pool with the project's
    ``active.strategy`` (the stage-1 teacher saved with the model serves the
    teacher/student strategy), and store tags, spans, uncertainty (mean word entropy) and
    the strategy's score and rank (its order to ask people, 1..n within each pool) per
    sentence. A worker holds at most ``chunk`` pool sentences at a time.

    The run is handed to shards: the returned status is ``running`` while queued runners
    work on it (at once ``succeeded`` or ``failed`` with a context that has no queue). On
    success ``ctx.after_predict`` runs, in the worker that ended the run."""
    store = ctx.store
    if not store.start_run(run_id, ctx.owner):
        return "skipped"
    return hand_out(ctx, run_id, "predict", {"chunk": int(chunk)})


def _prepare(ctx: JobContext, run: Run) -> list[dict]:
    """One shard per id range of ``services.pool_shard_sentences`` sentences (rounded up
    to whole chunks, so BALD's chunks are the unsharded job's; a smaller shard is one
    smaller chunk) of each pool, all pinned to the active version now, the project's
    ``[active]`` settings now and the pools' sentences now (``run.config["pinned"]``)."""
    store = ctx.store
    name = store.project_name(run.project_id)
    chunk = int((run.config or {}).get("chunk", CHUNK))
    mv = store.active_model_version(name)
    if mv is None:
        raise ModelError(f"project {name!r} has no active model yet; run a retrain first")
    store.set_run_model_version(run.id, mv.id)
    active = project_config(ctx.config, project_facts(store, name)).active
    upto = store.pool_bound(name)
    wanted = ctx.config.services.pool_shard_sentences
    chunk = min(chunk, wanted)  # a shard smaller than a chunk is one chunk
    size = -(-wanted // chunk) * chunk
    sizes = {role: store.pool_size(name, role, upto) for role in POOL_ROLES}
    progress = shared_progress(ctx, run)
    progress.stage("predict", total=sum(sizes.values()))
    store.merge_run_config(run.id, {"pinned": {
        "project": name, "model_version_id": mv.id, "version": mv.version,
        "active": dataclasses.asdict(active), "seed": ctx.config.training.seed,
        "chunk": chunk, "upto": upto}})
    payloads = []
    for role in POOL_ROLES:
        if not sizes[role]:
            continue
        ends = store.pool_boundaries(name, role, size, upto)
        payloads += [{"role": role, "after": after, "through": through}
                     for after, through in zip([0, *ends], ends)]
    progress.log(f"predicting {' and '.join(f'{n} {r}' for r, n in sizes.items() if n) or 'no'}"
                 f" sentences with v{mv.version} in {len(payloads)} shards of up to {size}")
    return payloads


def _predict_range(ctx: JobContext, run: Run, payload: dict) -> dict:
    """Predict, score and store one shard's id range, ``chunk`` sentences at a time:
    ``{"role", "db_ids", "sentence_ids", "scores", "lengths", "predicted"}`` in id order
    (what ordering the pool needs of them)."""
    store = ctx.store
    pinned = _pinned(run)
    scorer = scorer_for(ctx, pinned["model_version_id"])
    active = _active(pinned)
    out: dict = {"role": payload["role"], "db_ids": [], "sentence_ids": [], "scores": [],
                 "lengths": [], "predicted": 0}
    with scorer.lock:
        for sentences in store.pool_chunks(pinned["project"], payload["role"],
                                           pinned["chunk"], payload["through"],
                                           after=payload["after"]):
            if ctx.shutdown.is_set():
                raise WorkerShutdown("the worker is shutting down")
            scored, predicted = scorer.score(sentences, active, pinned["seed"])
            out["db_ids"] += [x.meta["db_id"] for x in sentences]
            out["sentence_ids"] += [x.id for x in sentences]
            out["scores"] += [score for score, _ in scored]
            out["lengths"] += [words for _, words in scored]
            out["predicted"] += predicted
    progress = shared_progress(ctx, store.get_run(run.id))
    progress.state["step"] = int(progress.state.get("step") or 0) + len(out["db_ids"])
    progress.write(force=True)
    return out


def _pinned(run: Run) -> dict:
    """The settings ``_prepare`` pinned on the run. A run sharded by an older worker, whose
    shards carried their settings in the payload, has none: say so instead of a KeyError."""
    pinned = (run.config or {}).get("pinned")
    if pinned is None:
        raise StaleRun(
            f"pool prediction run {run.id} was split into shards by an older worker, which "
            "kept the pinned settings in each shard instead of on the run; this worker cannot "
            "finish it. Queue a new one: 'Predict the pool with the active model' on the "
            "Training page")
    return pinned


def _active(pinned: dict) -> ActiveConfig:
    """The pinned ``[active]`` settings (JSON turned their tuples into lists: back to
    tuples)."""
    fields = pinned["active"]
    return ActiveConfig(**{**fields, **{k: tuple(v) for k, v in fields.items()
                                        if isinstance(v, list)}})


def _rank_pools(ctx: JobContext, run: Run, results: list[dict]) -> None:
    """Order each pool from its shards' scores, write the ranks, and hand on to
    ``ctx.after_predict``."""
    from concner.active.pool_order import ScoredPool, pool_order
    from concner.active.ranking import resolve_strategy, stored_name

    store = ctx.store
    progress = shared_progress(ctx, run)
    pinned = _pinned(run)
    name = pinned["project"]
    if not results:
        progress.log("predicted no sentences: both pools are empty")
        _after_predict(ctx, name)
        return
    active, seed, chunk = _active(pinned), pinned["seed"], pinned["chunk"]
    scorer = scorer_for(ctx, pinned["model_version_id"])
    strategy, note = resolve_strategy(active, have_teacher=scorer.teacher(active) is not None)
    done, predicted = [], 0
    for role in POOL_ROLES:
        pool = ScoredPool()
        for res in results:
            if res.get("role") == role:
                for entry in zip(res["db_ids"], res["sentence_ids"], res["scores"],
                                 res["lengths"]):
                    pool.add(*entry)
                predicted += res["predicted"]
        if not pool:
            continue
        with scorer.lock:
            scores, ranks = pool_order(strategy, pool, active, seed=seed,
                                       candidate_outputs=lambda positions, pool=pool: scorer.candidates(
                                           name, [pool.db_ids[p] for p in positions], chunk))
        store.save_ranks(scorer.mv.id, list(zip(pool.db_ids, ranks.tolist(), scores.tolist())),
                         scores=strategy.scores_by_position)
        done.append(f"{len(pool)} {role}")
    total = sum(len(r["db_ids"]) for r in results)
    if total > predicted:
        progress.log(f"kept {total - predicted} stored predictions of unchanged sentences; "
                     f"predicted {predicted}")
    if note:
        progress.log(note)
    progress.log(f"predicted {' and '.join(done) or 'no'} sentences with "
                 f"v{pinned['version']} in {len(results)} shards, ranked by "
                 f"{stored_name(strategy)}")
    _after_predict(ctx, name)


def _after_predict(ctx: JobContext, name: str) -> None:
    if not ctx.shutdown.is_set():
        ctx.after_predict(name)


#: a pool prediction, one shard per id range of each pool
SHARDED_PREDICTION = ShardWork(prepare=_prepare, run_one=_predict_range, complete=_rank_pools)
register_work("predict", SHARDED_PREDICTION)
