"""Active learning: pick the pool sentences annotators should label or correct next.

- :mod:`concner.active.outputs`: :class:`PoolOutputs` (model outputs over a pool, padded
  once into dense tensors) and :class:`Selection`.
- :mod:`concner.active.scores`: vectorised per-sentence scores over the padded pool.
- :mod:`concner.active.strategies`: the strategies, one signature
  ``select(outputs, k, *, exclude=frozenset(), seed=0) -> list[Selection]``, the
  :data:`STRATEGIES` registry and :func:`get_strategy`.
- :mod:`concner.active.pool`: :func:`score_pool` runs a :class:`~concner.method.inference.Predictor`
  over the pool in batched passes.
- :mod:`concner.active.ask_order`: the stored ask order (what the worker ranked with the
  active model's pool prediction) and :func:`~concner.active.ask_order.next_to_ask`, read
  by the CLI and the app.

Typical use::

    strategy = get_strategy(config.active.strategy, config.active)
    outputs = score_pool(predictor, pool, strategy, mc_passes=config.active.mc_passes)
    batch = strategy.select(outputs, config.active.batch_size, exclude=already_labelled)

The names below load on first use, so reading the ask order does not import torch.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_HOMES = {
    "PoolOutputs": "outputs", "Selection": "outputs", "pad_ragged": "outputs",
    "score_pool": "pool",
    **dict.fromkeys(["BALD", "MNLP", "STRATEGIES", "Diversity", "LeastConfidence", "Margin",
                     "MaxEntropy", "MeanEntropy", "RandomStrategy", "Strategy",
                     "TeacherStudent", "get_strategy", "rank"], "strategies"),
}

__all__ = [
    "BALD", "MNLP", "STRATEGIES", "Diversity", "LeastConfidence", "Margin", "MaxEntropy",
    "MeanEntropy", "PoolOutputs", "RandomStrategy", "Selection", "Strategy", "TeacherStudent",
    "get_strategy", "pad_ragged", "rank", "score_pool",
]


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
