"""The ``predict_pool`` job: the active model predicts and ranks the unlabelled pools.

:func:`execute_predict` streams every unlabelled target sentence (to correct) and every
unlabelled source sentence (to label) from the store ``chunk`` at a time; per chunk it
predicts, scores with the project's ``active.strategy`` and stores tags, spans,
uncertainty and score, then drops the chunk. Each pool is then ordered from its stored
scores (:func:`concner.active.pool_order.pool_order`, the same order
:func:`concner.active.ranking.rank_pool` gives the whole pool) and the ranks written in
one UPDATE. A sentence this model version already predicted and scored with this strategy,
from the same text (:func:`concner.store.pool_stream.input_hash`), is not predicted again.
What follows a finished prediction (``ctx.after_predict``) is :mod:`concner.jobs.chain`'s.
"""

from __future__ import annotations

import functools

import numpy as np

from concner.jobs.context import JobContext, RunProgress, job_outcome, project_config
from concner.store.pool_stream import POOL_ROLES, input_hash
from concner.store.snapshot import project_facts


def execute_predict(ctx: JobContext, name: str, run_id: int, chunk: int = 256) -> str:
    """Predict every unlabelled target sentence (to correct) and every unlabelled source
    sentence (to label) with the active model, rank each pool with the project's
    ``active.strategy`` (the stage-1 teacher saved with the model serves the
    teacher/student strategy), and store tags, spans, uncertainty (mean word entropy) and
    the strategy's score and rank (its order to ask people, 1..n within each pool) per
    sentence. At most ``chunk`` pool sentences are held at a time.
    On success ``ctx.after_predict`` runs."""
    store = ctx.store
    if not store.start_run(run_id, ctx.owner):
        return "skipped"
    progress = RunProgress(ctx, run_id)
    with job_outcome(ctx, run_id) as outcome:
        bundle, mv = ctx.registry.load_active(name)
        outcome.model_version_id = mv.id
        upto = store.pool_bound(name)
        sizes = {role: store.pool_size(name, role, upto) for role in POOL_ROLES}
        ranker = _PoolRanker(ctx, bundle, mv, project_config(ctx.config, project_facts(store, name)).active,
                             progress, chunk, total=sum(sizes.values()))
        strategy, done = None, []
        for role in POOL_ROLES:
            if not sizes[role]:
                continue
            n, strategy = ranker.rank(name, role, upto)
            done.append(f"{n} {role}")
        if ranker.kept:
            progress.log(f"kept {ranker.kept} stored predictions of unchanged sentences; "
                         f"predicted {ranker.predicted}")
        progress.log(f"predicted {' and '.join(done) or 'no'} sentences with v{mv.version}"
                     + (f", ranked by {strategy}" if strategy else ""))
        outcome.status = "succeeded"
    if outcome.status == "succeeded" and not ctx.shutdown.is_set():
        ctx.after_predict(name)
    return outcome.status


class _PoolRanker:
    """Predicts and scores a pool chunk by chunk, then orders it from the stored scores;
    the teacher is loaded once, on first need."""

    def __init__(self, ctx: JobContext, bundle, mv, active, progress: RunProgress, chunk: int,
                 total: int):
        from concner.method.inference import Predictor

        self.ctx, self.mv, self.active, self.progress, self.chunk = ctx, mv, active, progress, chunk
        tc = ctx.config.training
        self.predictor = Predictor(bundle, batch_size=tc.eval_batch_size, device=tc.device)
        self.done = self.kept = self.predicted = 0
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
        self.progress.write(force=True)

    def rank(self, name: str, role: str, upto: int) -> tuple[int, str]:
        """Predict, score and rank the ``role`` pool; ``(its size, strategy name)``."""
        from concner.active.pool_order import ScoredPool, pool_order
        from concner.active.ranking import resolve_strategy, stored_name

        strategy, note = resolve_strategy(self.active, have_teacher=self.teacher is not None)
        label = stored_name(strategy)
        seed = self.ctx.config.training.seed
        store, pool = self.ctx.store, ScoredPool()
        for sentences in store.pool_chunks(name, role, self.chunk, upto):
            scored = self._score(sentences, strategy, label, seed)
            for x in sentences:
                pool.add(x.meta["db_id"], x.id, *scored[x.meta["db_id"]])
            self._advance(len(sentences))
        if not pool:
            return 0, label
        scores, ranks = pool_order(strategy, pool, self.active, seed=seed,
                                   candidate_outputs=lambda positions: self._candidates(
                                       name, [pool.db_ids[p] for p in positions]))
        store.save_ranks(self.mv.id, list(zip(pool.db_ids, ranks.tolist(), scores.tolist())),
                         scores=strategy.scores_by_position)
        if note:
            self.progress.log(note)
        return len(pool), label

    def _score(self, sentences: list, strategy, label: str, seed: int
               ) -> dict[int, tuple[float | None, int]]:
        """Row id -> ``(score, words)`` of one chunk: stored ones kept, the rest predicted,
        scored and stored (rank to follow); nothing of the chunk's arrays outlives it."""
        from concner.active.pool_order import score_chunk

        store = self.ctx.store
        kept = store.reusable_predictions(self.mv.id, label, sentences)
        out = {sid: (k.al_score, k.n_words) for sid, k in kept.items()}
        fresh = [x for x in sentences if x.meta["db_id"] not in kept]
        self.kept += len(kept)
        self.predicted += len(fresh)
        if not fresh:
            return out
        preds = self.predictor.predict(fresh)
        scores = score_chunk(self.predictor, fresh, preds, strategy,
                             mc_passes=self.active.mc_passes, teacher=self.teacher, seed=seed)
        rows = [(x.meta["db_id"], list(p.tags),
                 [{"start": sp.start, "end": sp.end, "label": sp.label, "score": sp.score}
                  for sp in p.spans], float(p.mean_entropy), score, None)
                for x, p, score in zip(fresh, preds, scores)]
        store.save_predictions(self.mv.id, rows, strategy=label,
                               input_hashes={x.meta["db_id"]: input_hash(x) for x in fresh})
        out.update((x.meta["db_id"], (score, len(p.word_probs)))
                   for x, p, score in zip(fresh, preds, scores))
        return out

    def _candidates(self, name: str, db_ids: list[int]):
        """:class:`PoolOutputs` (word probabilities, representations ``[M, H]``) of the
        diversity strategy's ``M`` candidates, read and predicted ``chunk`` at a time."""
        from concner.active.outputs import PoolOutputs

        ids, probs, reps = [], [], []
        for start in range(0, len(db_ids), self.chunk):
            part = self.ctx.store.sentences_by_id(name, db_ids[start:start + self.chunk])
            preds, emb = self.predictor.predict_with_embeddings(part)
            ids += [x.id for x in part]
            probs += [p.word_probs for p in preds]
            reps.append(emb)
        return PoolOutputs(sentence_ids=ids, word_probs=probs, representations=np.concatenate(reps))
