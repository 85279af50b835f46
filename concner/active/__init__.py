"""Active learning: pick the pool sentences annotators should label or correct next.

- :mod:`concner.active.outputs`: :class:`PoolOutputs` (model outputs over a pool, padded
  once into dense tensors) and :class:`Selection`.
- :mod:`concner.active.scores`: vectorised per-sentence scores over the padded pool.
- :mod:`concner.active.strategies`: the strategies, one signature
  ``select(outputs, k, *, exclude=frozenset(), seed=0) -> list[Selection]``, the
  :data:`STRATEGIES` registry and :func:`get_strategy`.
- :mod:`concner.active.pool`: :func:`score_pool` runs a :class:`~concner.method.inference.Predictor`
  over the pool in batched passes.

Typical use::

    strategy = get_strategy(config.active.strategy, config.active)
    outputs = score_pool(predictor, pool, strategy, mc_passes=config.active.mc_passes)
    batch = strategy.select(outputs, config.active.batch_size, exclude=already_labelled)
"""

from concner.active.outputs import PoolOutputs, Selection, pad_ragged
from concner.active.pool import score_pool
from concner.active.strategies import (
    BALD,
    MNLP,
    STRATEGIES,
    Diversity,
    LeastConfidence,
    Margin,
    MaxEntropy,
    MeanEntropy,
    RandomStrategy,
    Strategy,
    TeacherStudent,
    get_strategy,
    rank,
)

__all__ = [
    "BALD", "MNLP", "STRATEGIES", "Diversity", "LeastConfidence", "Margin", "MaxEntropy",
    "MeanEntropy", "PoolOutputs", "RandomStrategy", "Selection", "Strategy", "TeacherStudent",
    "get_strategy", "pad_ragged", "rank", "score_pool",
]
