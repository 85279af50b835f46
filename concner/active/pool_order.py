"""Score a pool chunk by chunk and order it from the stored scores, exactly as
:func:`concner.active.ranking.rank_pool` orders the whole pool at once.

Every strategy but random scores a sentence from its own model outputs, so a chunk's
scores are the whole pool's (:func:`score_chunk`); random scores by position in the pool
(:attr:`~concner.active.strategies.Strategy.scores_by_position`), known once the pool is.
:func:`pool_order` then needs only ``N`` scores, ids and lengths (:class:`ScoredPool`),
plus, for the diversity strategy, the model outputs of its
:meth:`~concner.active.strategies.Strategy.candidates_needed` best sentences.

BALD is the exception to "exactly": its MC-dropout masks depend on which sentences share a
batch, so scores from chunks are other draws of the same estimate than the whole pool's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from concner.active.outputs import PoolOutputs
from concner.active.pool import score_pool
from concner.active.strategies import Strategy, score_order
from concner.config import ActiveConfig

if TYPE_CHECKING:  # pragma: no cover
    from concner.method.inference import Prediction, Predictor
    from concner.sentence import Sentence


def score_chunk(predictor: Predictor, sentences: Sequence[Sentence],
                predictions: Sequence[Prediction], strategy: Strategy, *, mc_passes: int,
                teacher: Predictor | None = None, seed: int = 0) -> list[float | None]:
    """``[n]`` scores of one chunk of ``n`` pool sentences (``predictions``: ``predictor``'s
    of them, whose ``word_probs [n_words, C]`` are reused); None for a strategy that scores
    by position. The diversity strategy's scores are its base's."""
    if strategy.scores_by_position:
        return [None] * len(sentences)
    scorer = getattr(strategy, "base", strategy)  # diversity: scores are the base's
    outputs = score_pool(predictor, sentences, scorer, mc_passes=mc_passes, teacher=teacher,
                         seed=seed, word_probs=[p.word_probs for p in predictions])
    return [float(x) for x in scorer.scores(outputs, seed=seed)]


@dataclass
class ScoredPool:
    """What ordering a pool needs, in pool order (ascending row id): per sentence its row
    id, sentence id, score (None: scored by position) and words."""

    db_ids: list[int] = field(default_factory=list)
    sentence_ids: list[str] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    def add(self, db_id: int, sentence_id: str, score: float | None, n_words: int) -> None:
        self.db_ids.append(db_id)
        self.sentence_ids.append(sentence_id)
        self.scores.append(score)
        self.lengths.append(n_words)

    def __len__(self) -> int:
        return len(self.db_ids)


def pool_order(strategy: Strategy, pool: ScoredPool, config: ActiveConfig, *, seed: int,
               candidate_outputs: Callable[[list[int]], PoolOutputs]
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(scores [N], ranks [N])`` of the pool (rank 1 = ask first), as ``rank_pool`` gives.

    ``candidate_outputs(positions)`` returns the :class:`PoolOutputs` (word
    probabilities and representations) of the pool sentences at these positions, in that
    order; it is called once, for the diversity strategy's candidates only.
    """
    n = len(pool)
    if strategy.scores_by_position:
        scores = strategy.pool_scores(n, seed=seed)
    else:
        scores = np.asarray(pool.scores, dtype=np.float64)
    order = score_order(pool.sentence_ids, scores, np.asarray(pool.lengths))
    m = strategy.candidates_needed(n, config.batch_size, config.diversity_order_limit)
    if m:
        top = [int(p) for p in order[:m]]
        outputs = candidate_outputs(top)
        position = {pool.sentence_ids[p]: p for p in top}
        head = strategy.order(outputs, config.batch_size, seed=seed,
                              limit=config.diversity_order_limit, scores=scores[top], n_pool=n)
        order = np.concatenate([np.array([position[sid] for sid in head], dtype=np.int64),
                                order[m:]])
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(1, n + 1)
    return scores, ranks
