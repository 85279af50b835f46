"""The ``predict_pool`` job: the active model predicts and ranks the unlabelled pools.

:func:`execute_predict` predicts every unlabelled target sentence (to correct) and every
unlabelled source sentence (to label), ranks each pool with the project's
``active.strategy`` and stores the tags, spans, uncertainty, score and rank per sentence.
What follows a finished prediction (``ctx.after_predict``) is :mod:`concner.jobs.chain`'s.
"""

from __future__ import annotations

import functools

from concner.jobs.context import JobContext, RunProgress, job_outcome, project_config
from concner.store.snapshot import take_snapshot


def execute_predict(ctx: JobContext, name: str, run_id: int, chunk: int = 256) -> str:
    """Predict every unlabelled target sentence (to correct) and every unlabelled source
    sentence (to label) with the active model, rank each pool with the project's
    ``active.strategy`` (:func:`concner.active.ranking.rank_pool`; the stage-1 teacher
    saved with the model serves the teacher/student strategy), and store tags, spans,
    uncertainty (mean word entropy) and the strategy's score and rank (its order to ask
    people, 1..n within each pool) per sentence.
    On success ``ctx.after_predict`` runs."""
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
        self.progress.write(force=True)

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
