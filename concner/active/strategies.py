"""Query strategies: which pool sentences should annotators see next.

Every strategy has the same call::

    strategy.select(outputs: PoolOutputs, k, *, exclude=frozenset(), seed=0) -> list[Selection]

returning at most ``k`` distinct sentence ids, best first, never an excluded id. Scores
are "higher = more informative" (see :mod:`concner.active.scores` for each formula and
its length normalisation). Ranking is deterministic: by score (rounded to 9 decimals, so
padding/BLAS rounding noise cannot reorder equal scores), then by sentence id;
empty sentences (no words: nothing to annotate) always come last. ``k`` larger than the
pool returns the whole (non-excluded) pool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from collections.abc import Set as AbstractSet

import numpy as np

from concner.active import scores as S
from concner.active.kmeans import kmeans, l2_normalise
from concner.active.outputs import PoolOutputs, Selection
from concner.config import ActiveConfig
from concner.errors import ConfigError

_TIE_DECIMALS = 9


def rank(outputs: PoolOutputs, scores: np.ndarray, k: int,
         exclude: AbstractSet[str] = frozenset()) -> list[Selection]:
    """Top ``k`` non-excluded sentences by ``scores [N]`` (empty sentences last, then
    score descending, then id ascending)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"the number of sentences to select must be a whole number >= 0, got {k!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(outputs),):
        raise ConfigError(f"{scores.shape} scores for a pool of {len(outputs)} sentences")
    sids = outputs.sentence_ids
    keep = np.array([sid not in exclude for sid in sids], dtype=bool)
    order = score_order(sids, scores, outputs.lengths)
    order = order[keep[order]][:k]
    return [Selection(sids[i], float(scores[i])) for i in order]


def score_order(sentence_ids, scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[N]`` positions of the pool in :func:`rank`'s order (empty sentences last, then
    ``scores [N]`` descending at :data:`_TIE_DECIMALS` decimals, then ``sentence_ids``
    ascending); ``lengths [N]`` are the words per sentence. Needs nothing but these three
    columns, so a pool ranked from stored scores orders exactly as :func:`rank` does."""
    # np.lexsort: the last key is the primary one
    return np.lexsort((np.array(sentence_ids, dtype=str), -np.round(scores, _TIE_DECIMALS),
                       np.asarray(lengths) == 0))


class Strategy(ABC):
    """A query strategy. Subclasses give :meth:`scores`; :meth:`select` ranks them.

    ``needs_mc`` / ``needs_representations`` / ``needs_teacher`` tell
    :func:`concner.active.pool.score_pool` which model outputs to compute.
    """

    name: str = ""
    needs_mc: bool = False
    needs_representations: bool = False
    needs_teacher: bool = False
    #: the score of a sentence depends on its position in the whole pool (random), not on
    #: the sentence alone: a pool ranked chunk by chunk gets its scores from
    #: :meth:`pool_scores` once the pool is known
    scores_by_position: bool = False

    @classmethod
    def from_config(cls, config: ActiveConfig) -> Strategy:
        """An instance configured from ``[active]`` (most strategies have no parameters)."""
        return cls()

    @abstractmethod
    def scores(self, outputs: PoolOutputs, *, seed: int = 0) -> np.ndarray:
        """``[N]`` informativeness of every pool sentence (higher = pick first)."""

    def select(self, outputs: PoolOutputs, k: int, *, exclude: AbstractSet[str] = frozenset(),
               seed: int = 0) -> list[Selection]:
        """The ``k`` best sentences not in ``exclude``, best first."""
        return rank(outputs, self.scores(outputs, seed=seed), k, exclude)

    def order(self, outputs: PoolOutputs, batch_size: int, *, seed: int = 0,
              limit: int | None = None, scores: np.ndarray | None = None,
              n_pool: int | None = None) -> list[str]:
        """Every pool sentence id in the order to ask people, as consecutive batches of
        ``batch_size``: the first batch is ``select(outputs, batch_size)``, the next one is
        the best of the rest, and so on. For a strategy that scores sentences one by one
        this is simply the score order; ``limit`` matters only to strategies that pick
        batches as a whole (see :class:`Diversity`). ``scores [N]``: the scores of
        ``outputs`` when already known (``n_pool``: see :meth:`Diversity.order`)."""
        if scores is None:
            scores = self.scores(outputs, seed=seed)
        return [s.sentence_id for s in rank(outputs, scores, len(outputs))]

    def candidates_needed(self, n_pool: int, batch_size: int, limit: int | None) -> int:
        """How many of the best-scored sentences (in :func:`rank` order) :meth:`order`
        looks at beyond their scores (representations): none for a strategy that orders
        by score alone, so a pool can be ordered from stored scores."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomStrategy(Strategy):
    """Uniformly random order, fixed by ``seed`` (the baseline every strategy must beat)."""

    name = "random"
    scores_by_position = True

    def scores(self, outputs: PoolOutputs, *, seed: int = 0) -> np.ndarray:
        return self.pool_scores(len(outputs), seed=seed)

    @staticmethod
    def pool_scores(n_pool: int, *, seed: int = 0) -> np.ndarray:
        """``[n_pool]`` scores of the pool's sentences by position (pool order)."""
        return np.random.default_rng(seed).random(n_pool)


class _ProbsStrategy(Strategy):
    """A score computed from the padded word probabilities alone."""

    score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def scores(self, outputs: PoolOutputs, *, seed: int = 0) -> np.ndarray:
        probs, mask = outputs.padded_probs()
        return type(self).score_fn(probs, mask)


class LeastConfidence(_ProbsStrategy):
    """Lowest max-probability over a sentence's words (worst word; not length-normalised)."""

    name = "least_confidence"
    score_fn = S.least_confidence


class MNLP(_ProbsStrategy):
    """Maximum normalised log-probability, lowest first (mean over words: normalised)."""

    name = "mnlp"
    score_fn = S.mnlp


class MeanEntropy(_ProbsStrategy):
    """Mean label entropy over words (normalised)."""

    name = "mean_entropy"
    score_fn = S.mean_entropy


class MaxEntropy(_ProbsStrategy):
    """Largest label entropy of any word (worst word; not normalised)."""

    name = "max_entropy"
    score_fn = S.max_entropy


class Margin(_ProbsStrategy):
    """Smallest gap between the two most likely labels of any word (not normalised)."""

    name = "margin"
    score_fn = S.margin


class BALD(Strategy):
    """Mutual information from MC-dropout passes, mean over words (normalised).

    Needs ``outputs.mc_samples`` with at least 2 passes (one pass has no disagreement).
    """

    name = "bald"
    needs_mc = True

    def scores(self, outputs: PoolOutputs, *, seed: int = 0) -> np.ndarray:
        if outputs.mc_samples is None:
            raise ConfigError("strategy 'bald' needs MC-dropout samples: build the pool outputs "
                              "with score_pool(..., strategy='bald', mc_passes=K)")
        samples, mask = outputs.padded_mc()
        if samples.shape[2] < 2:
            raise ConfigError("strategy 'bald' needs at least 2 MC-dropout passes "
                              f"(active.mc_passes), got {samples.shape[2]}")
        return S.bald(samples, mask)


class TeacherStudent(Strategy):
    """Disagreement between the source-trained teacher and the target-distilled student.

    Mean over words of the Jensen-Shannon divergence between their label distributions
    (normalised): where distillation moved the student away from the teacher, or the two
    split on a word, a human correction is worth most. ``outputs.word_probs`` are the
    student's, ``outputs.teacher_probs`` the teacher's.
    """

    name = "teacher_student"
    needs_teacher = True

    def scores(self, outputs: PoolOutputs, *, seed: int = 0) -> np.ndarray:
        if outputs.teacher_probs is None:
            raise ConfigError("strategy 'teacher_student' needs the teacher's probabilities: "
                              "pass teacher=<Predictor of the stage-1 model> to score_pool")
        probs, mask = outputs.padded_probs()
        return S.disagreement(probs, outputs.padded_teacher(), mask)


class Diversity(Strategy):
    """Uncertain *and* different: no batch of twenty near-duplicates.

    Takes the ``m = factor * k`` best candidates of the ``base`` strategy, clusters their
    L2-normalised sentence representations into ``k`` clusters (seeded k-means++), and
    returns the most uncertain sentence of each cluster, best first. If k-means leaves a
    cluster empty (duplicate representations), the remaining places go to the next most
    uncertain candidates. Empty sentences are never clustered (they only fill a pool with
    fewer than ``k`` non-empty sentences). Scores are the base strategy's.
    """

    name = "diversity"
    needs_representations = True

    def __init__(self, base: str | None = None, factor: int | None = None):
        defaults = ActiveConfig()
        base = defaults.diversity_base if base is None else base
        factor = defaults.diversity_candidates if factor is None else factor
        if base == self.name:
            raise ConfigError("active.diversity_base cannot be 'diversity' itself")
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ConfigError(f"active.diversity_candidates must be a whole number >= 1, got {factor!r}")
        self.base = get_strategy(base)
        self.factor = factor
        self.needs_mc = self.base.needs_mc
        self.needs_teacher = self.base.needs_teacher
        self.scores_by_position = self.base.scores_by_position

    @classmethod
    def from_config(cls, config: ActiveConfig) -> Diversity:
        return cls(base=config.diversity_base, factor=config.diversity_candidates)

    def scores(self, outputs: PoolOutputs, *, seed: int = 0) -> np.ndarray:
        return self.base.scores(outputs, seed=seed)

    def select(self, outputs: PoolOutputs, k: int, *, exclude: AbstractSet[str] = frozenset(),
               seed: int = 0) -> list[Selection]:
        return self._select(outputs, self.scores(outputs, seed=seed), k, exclude, seed)

    def order(self, outputs: PoolOutputs, batch_size: int, *, seed: int = 0,
              limit: int | None = None, scores: np.ndarray | None = None,
              n_pool: int | None = None) -> list[str]:
        """Batch after batch of ``batch_size`` diverse picks (each batch clustered among the
        most uncertain of the sentences not picked yet) until ``limit`` sentences are
        ordered (``None``: the whole pool); the rest follow by the base strategy's score.

        Each batch is what :meth:`select` would pick with the earlier batches excluded, so
        a person who takes the first ``batch_size`` sentences gets exactly the benchmarked
        diverse batch. Cost: one k-means over ``factor x batch_size`` candidates a batch.

        ``scores [N]``: the base strategy's scores of ``outputs`` when already known; with
        ``n_pool``, ``outputs`` are only the :meth:`candidates_needed` best of a pool of
        ``n_pool`` sentences, which gives the same order of them as the whole pool would.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"active.batch_size must be a whole number >= 1, got {batch_size!r}")
        scores = self.scores(outputs, seed=seed) if scores is None else scores
        n = self._ordered(len(outputs) if n_pool is None else n_pool, limit)
        n = min(n, len(outputs))
        ordered: list[str] = []
        taken: set[str] = set()
        while len(ordered) < n:
            batch = self._select(outputs, scores, min(batch_size, n - len(ordered)), taken, seed)
            if not batch:
                break
            ordered += [s.sentence_id for s in batch]
            taken.update(s.sentence_id for s in batch)
        return ordered + [s.sentence_id for s in rank(outputs, scores, len(outputs), taken)]

    def pool_scores(self, n_pool: int, *, seed: int = 0) -> np.ndarray:
        """The base strategy's ``[n_pool]`` scores by position (when it scores so)."""
        return self.base.pool_scores(n_pool, seed=seed)

    @staticmethod
    def _ordered(n_pool: int, limit: int | None) -> int:
        """How many sentences :meth:`order` orders batch by batch."""
        return n_pool if limit is None else min(max(limit, 0), n_pool)

    def candidates_needed(self, n_pool: int, batch_size: int, limit: int | None) -> int:
        """The batches of :meth:`order` cluster only among the best of the pool: batch j
        takes ``k_j <= batch_size`` of the ``factor x k_j`` best not taken yet, all within
        the ``taken + factor x k_j <= n + (factor - 1) x batch_size`` best overall (``n``:
        the sentences ordered batch by batch)."""
        n = self._ordered(n_pool, limit)
        return 0 if n == 0 else min(n_pool, n + (self.factor - 1) * batch_size)

    def _select(self, outputs: PoolOutputs, scores: np.ndarray, k: int,
                exclude: AbstractSet[str], seed: int) -> list[Selection]:
        if outputs.representations is None:
            raise ConfigError("strategy 'diversity' needs sentence representations: build the "
                              "pool outputs with score_pool(..., strategy='diversity')")
        candidates = rank(outputs, scores, self.factor * k, exclude)
        index = {sid: i for i, sid in enumerate(outputs.sentence_ids)}
        lengths = outputs.lengths
        # empty sentences rank last and are never clustered: they only fill a short pool
        nonempty = [c for c in candidates if lengths[index[c.sentence_id]] > 0]
        if len(nonempty) <= k:
            return candidates[:k]
        candidates = nonempty
        reps = l2_normalise(outputs.representations[[index[c.sentence_id] for c in candidates]])
        labels = kmeans(reps, k, seed=seed)
        picked, seen = [], set()
        for pos in range(len(candidates)):  # best first: the first of a cluster is its best
            if labels[pos] not in seen:
                seen.add(labels[pos])
                picked.append(pos)
        for pos in range(len(candidates)):  # empty clusters: fill by uncertainty
            if len(picked) >= k:
                break
            if pos not in picked:
                picked.append(pos)
        return [candidates[pos] for pos in sorted(picked[:k])]

    def __repr__(self) -> str:
        return f"Diversity(base={self.base.name!r}, factor={self.factor})"


_CLASSES: list[type[Strategy]] = [RandomStrategy, LeastConfidence, MNLP, MeanEntropy, MaxEntropy,
                                  Margin, BALD, TeacherStudent]

#: Every strategy by name, with default parameters.
STRATEGIES: dict[str, Strategy] = {cls.name: cls() for cls in _CLASSES}


def get_strategy(name: str, config: ActiveConfig | None = None) -> Strategy:
    """The strategy called ``name``; configured from ``config`` when given.

    Raises :class:`ConfigError` listing the known names for an unknown one.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown active-learning strategy {name!r}; known: "
                          f"{', '.join(sorted(STRATEGIES))}")
    if config is None:
        return STRATEGIES[name]
    return type(STRATEGIES[name]).from_config(config)


STRATEGIES[Diversity.name] = Diversity()
