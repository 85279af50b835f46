"""Model outputs over a pool, computed in batched passes with a :class:`Predictor`.

One deterministic pass gives the word probabilities; BALD adds ``mc_passes`` passes with
dropout on; the diversity strategy adds one pass for sentence representations; the
teacher/student strategy adds one pass of the teacher. Nothing is computed that the
strategy does not use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from concner.active.outputs import PoolOutputs
from concner.active.strategies import Strategy, get_strategy
from concner.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from concner.method.inference import Predictor
    from concner.sentence import Sentence


def score_pool(
    predictor: Predictor,
    sentences: Sequence[Sentence],
    strategy: str | Strategy,
    *,
    mc_passes: int,
    teacher: Predictor | None = None,
    seed: int = 0,
    word_probs: Sequence[np.ndarray] | None = None,
    representations: np.ndarray | None = None,
) -> PoolOutputs:
    """Run the model(s) over ``sentences`` and collect what ``strategy`` needs.

    Args:
        predictor: the current model (for teacher/student: the target-distilled student).
        sentences: the pool; ids must be unique.
        strategy: a strategy or its registry name.
        mc_passes: forward passes with dropout on, used only by strategies that need MC
            samples (BALD, or diversity over BALD); at least 2 there.
        teacher: the source-trained teacher's predictor; required by ``teacher_student``.
        seed: seeds the dropout masks of the MC passes (the global torch RNG is restored
            afterwards), so the same pool and seed give the same samples.
        word_probs: per sentence ``[n_words, C]`` probabilities ``predictor`` already gave
            (``Prediction.word_probs``); skips the deterministic pass.
        representations: ``[N, H]`` sentence embeddings ``predictor`` already gave
            (:meth:`~concner.method.inference.Predictor.predict_with_embeddings`); skips the
            representation pass of the diversity strategy.

    Returns:
        :class:`PoolOutputs` with ``word_probs`` always, and ``mc_samples [K, n, C]``,
        ``representations [N, H]`` and ``teacher_probs`` when the strategy needs them.
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    sentences = list(sentences)
    if not sentences:
        raise ConfigError("the pool is empty: add unlabelled sentences before selecting")
    if strat.needs_teacher and teacher is None:
        raise ConfigError(f"strategy {strat.name!r} needs teacher=<Predictor of the "
                          "source-trained model>")
    if strat.needs_mc and (isinstance(mc_passes, bool) or not isinstance(mc_passes, int)
                           or mc_passes < 2):
        raise ConfigError(f"strategy {strat.name!r} needs active.mc_passes >= 2, got {mc_passes!r}")

    if word_probs is None:
        word_probs = predictor.word_probs(sentences)
    elif len(word_probs) != len(sentences):
        raise ConfigError(f"{len(word_probs)} word-probability arrays for {len(sentences)} "
                          "pool sentences")
    mc_samples = None
    if strat.needs_mc:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            passes = [predictor.word_probs(sentences, mc_dropout=True) for _ in range(mc_passes)]
        mc_samples = [np.stack([p[i] for p in passes]) for i in range(len(sentences))]
    if not strat.needs_representations:
        representations = None
    elif representations is None:
        representations = predictor.sentence_embeddings(sentences)
    elif len(representations) != len(sentences):
        raise ConfigError(f"{len(representations)} sentence representations for "
                          f"{len(sentences)} pool sentences")
    teacher_probs = teacher.word_probs(sentences) if strat.needs_teacher else None
    return PoolOutputs(
        sentence_ids=[s.id for s in sentences],
        word_probs=word_probs,
        mc_samples=mc_samples,
        representations=representations,
        teacher_probs=teacher_probs,
    )
