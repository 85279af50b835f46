"""Rank a predicted pool with the configured strategy (what the worker stores per sentence).

:func:`resolve_strategy` turns ``[active]`` into the strategy that can actually run: the
teacher/student strategy needs the stage-1 teacher, which exists only when the retrain
distilled (``loss.kd``) and saved it; without one it falls back to MNLP and says so.
:func:`rank_pool` scores the pool, reusing the probabilities of the prediction pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from concner.active.pool import score_pool
from concner.active.strategies import MNLP, Strategy, get_strategy
from concner.config import ActiveConfig

if TYPE_CHECKING:  # pragma: no cover
    from concner.method.inference import Prediction, Predictor
    from concner.sentence import Sentence

log = logging.getLogger("concner.active")


def needs_teacher(config: ActiveConfig) -> bool:
    """Whether ``active.strategy`` (or the diversity strategy's base) needs a teacher."""
    return get_strategy(config.strategy, config).needs_teacher


def needs_representations(config: ActiveConfig) -> bool:
    """Whether ``active.strategy`` clusters sentence representations (diversity)."""
    return get_strategy(config.strategy, config).needs_representations


def resolve_strategy(config: ActiveConfig, *, have_teacher: bool) -> tuple[Strategy, str | None]:
    """``(strategy, note)``: the configured strategy, or MNLP with a note saying why when it
    needs a teacher and there is none."""
    strategy = get_strategy(config.strategy, config)
    if strategy.needs_teacher and not have_teacher:
        note = (f"active.strategy {config.strategy!r} needs the stage-1 teacher, which this model "
                "does not have (the retrain did not distil: loss.kd off or no unlabelled target "
                f"sentences); ranked with {MNLP.name!r} instead")
        log.info(note)
        return MNLP(), note
    return strategy, None


def stored_name(strategy: Strategy) -> str:
    """The name stored with a strategy's scores (``al_strategy``): the diversity strategy's
    names its base (``diversity/mnlp``), whose scores they are."""
    return strategy.name if strategy.name != "diversity" else f"diversity/{strategy.base.name}"


@dataclass(frozen=True)
class PoolRanking:
    """``strategy``: the name of the strategy that scored; ``scores``: sentence id -> score
    (higher = more informative); ``ranks``: sentence id -> position in the order to ask
    people (1 = first; :meth:`Strategy.order`, which differs from the score order for the
    diversity strategy); ``note``: why the configured strategy was replaced."""

    strategy: str
    scores: dict[str, float]
    ranks: dict[str, int]
    note: str | None = None


def rank_pool(predictor: Predictor, sentences: Sequence[Sentence],
              predictions: Sequence[Prediction], config: ActiveConfig, *,
              teacher: Predictor | None = None, seed: int = 0,
              representations: np.ndarray | None = None) -> PoolRanking:
    """Score every pool sentence with the strategy :func:`resolve_strategy` picks.

    ``predictions`` are ``predictor``'s predictions of ``sentences`` (same order); their
    ``word_probs [n_words, C]`` are reused, so only the extra passes a strategy needs run
    (MC dropout, representations unless given ``[N, H]``, the teacher). The diversity
    strategy's scores are its base strategy's (clustering picks a batch, not a score per
    sentence); its ``ranks`` are the diverse batches of ``config.batch_size``, one after
    another.
    """
    strategy, note = resolve_strategy(config, have_teacher=teacher is not None)
    outputs = score_pool(predictor, sentences, strategy, mc_passes=config.mc_passes,
                         teacher=teacher, seed=seed,
                         word_probs=[p.word_probs for p in predictions],
                         representations=representations)
    scores = strategy.scores(outputs, seed=seed)
    order = strategy.order(outputs, config.batch_size, seed=seed,
                           limit=config.diversity_order_limit)
    return PoolRanking(stored_name(strategy), {sid: float(x) for sid, x in zip(outputs.sentence_ids, scores)},
                       {sid: i + 1 for i, sid in enumerate(order)}, note)
