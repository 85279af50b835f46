"""Predict and score pool sentences with one model version, chunk by chunk, as the shards
of a pool prediction do (:mod:`concner.jobs.predict`).

:func:`scorer_for` gives this process's :class:`PoolScorer` of a model version (loaded once
and kept while the shards of one run follow each other; a worker holds one). A scorer
keeps a stored prediction of the same version and strategy whose input is unchanged
(:meth:`concner.store.Store.reusable_predictions`), predicts and scores the rest, and
stores tags, spans, uncertainty and score (the rank follows once the whole pool is scored).
Its lock lets one shard at a time use the model in a process: two runner threads of one
worker would otherwise share two cores between two copies of the same work.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numpy as np

from concner.config import ActiveConfig
from concner.jobs.context import JobContext
from concner.store.pool_stream import input_hash


class PoolScorer:
    """Model version ``mv``'s predictor (and, when the strategy needs it, its stage-1
    teacher's), with what a chunk of the pool needs: :meth:`score`, :meth:`candidates`."""

    def __init__(self, ctx: JobContext, mv):
        from concner.method.inference import Predictor

        self.ctx, self.mv = ctx, mv
        tc = ctx.config.training
        self.predictor = Predictor(ctx.registry.load(mv), batch_size=tc.eval_batch_size,
                                   device=tc.device)
        self.lock = threading.Lock()

    @functools.cached_property
    def _teacher(self):
        from concner.method.inference import Predictor

        loaded = self.ctx.registry.load_teacher(self.mv)
        if loaded is None:
            return None
        tc = self.ctx.config.training
        return Predictor(loaded, tc.eval_batch_size, tc.device)

    def teacher(self, active: ActiveConfig):
        """The stage-1 teacher's predictor when ``active``'s strategy needs one and it was
        saved with the model (loaded on first need), else None."""
        from concner.active.ranking import needs_teacher

        return self._teacher if needs_teacher(active) else None

    def score(self, sentences: Sequence, active: ActiveConfig, seed: int
              ) -> tuple[list[tuple[float | None, int]], int]:
        """``([(score, words)] in the order of sentences, how many were predicted)`` of one
        chunk: stored ones kept, the rest predicted, scored with ``active.strategy`` and
        stored (rank to follow); nothing of the chunk's arrays outlives it."""
        from concner.active.pool_order import score_chunk
        from concner.active.ranking import resolve_strategy, stored_name

        store = self.ctx.store
        teacher = self.teacher(active)
        strategy, _ = resolve_strategy(active, have_teacher=teacher is not None)
        label = stored_name(strategy)
        kept = store.reusable_predictions(self.mv.id, label, sentences)
        out = {sid: (k.al_score, k.n_words) for sid, k in kept.items()}
        fresh = [x for x in sentences if x.meta["db_id"] not in kept]
        if fresh:
            preds = self.predictor.predict(fresh)
            scores = score_chunk(self.predictor, fresh, preds, strategy,
                                 mc_passes=active.mc_passes, teacher=teacher, seed=seed)
            rows = [(x.meta["db_id"], list(p.tags),
                     [{"start": sp.start, "end": sp.end, "label": sp.label, "score": sp.score}
                      for sp in p.spans], float(p.mean_entropy), score, None)
                    for x, p, score in zip(fresh, preds, scores)]
            store.save_predictions(self.mv.id, rows, strategy=label,
                                   input_hashes={x.meta["db_id"]: input_hash(x) for x in fresh})
            out.update((x.meta["db_id"], (score, len(p.word_probs)))
                       for x, p, score in zip(fresh, preds, scores))
        return [out[x.meta["db_id"]] for x in sentences], len(fresh)

    def candidates(self, name: str, db_ids: list[int], chunk: int):
        """:class:`PoolOutputs` (word probabilities, representations ``[M, H]``) of the
        diversity strategy's ``M`` candidates (row ids), read and predicted ``chunk`` at a
        time."""
        from concner.active.outputs import PoolOutputs

        ids, probs, reps = [], [], []
        for start in range(0, len(db_ids), chunk):
            part = self.ctx.store.sentences_by_id(name, db_ids[start:start + chunk])
            preds, emb = self.predictor.predict_with_embeddings(part)
            ids += [x.id for x in part]
            probs += [p.word_probs for p in preds]
            reps.append(emb)
        return PoolOutputs(sentence_ids=ids, word_probs=probs, representations=np.concatenate(reps))


_scorers: dict[tuple, PoolScorer] = {}
_scorers_lock = threading.Lock()


def scorer_for(ctx: JobContext, model_version_id: int) -> PoolScorer:
    """This process's :class:`PoolScorer` of ``model_version_id`` (the last one is kept, so
    a worker running several shards of one run in a row loads the model once)."""
    tc = ctx.config.training
    key = (ctx.store.url, ctx.registry.root, model_version_id, tc.device, tc.eval_batch_size)
    with _scorers_lock:
        if key not in _scorers:
            _scorers.clear()
            _scorers[key] = PoolScorer(ctx, ctx.store.get_model_version(model_version_id))
        return _scorers[key]
