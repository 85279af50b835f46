"""Vectorised uncertainty scores over a padded pool.

Every function takes ``probs [N, T, C]`` (zero-padded) and ``mask [N, T]`` (true on real
words) and returns ``[N]`` float64 scores where **higher means more informative**. An
empty sentence (no words) scores 0: there is nothing in it to annotate. Entropies and
divergences use natural logarithms.

Length normalisation, per score:
- ``least_confidence`` and ``margin`` take the worst word (min over words): not
  normalised; a longer sentence has more chances to hold one hard word, which is the point
  of a worst-word score.
- ``mnlp`` (Shen et al. 2018) and ``mean_entropy``, ``bald``, ``disagreement`` average
  over words: normalised, so long sentences are not favoured for being long.
- ``max_entropy``: the worst word, not normalised (like least confidence).
"""

from __future__ import annotations

import numpy as np

_TINY = 1e-12
_CHUNK = 2048  # sentences per float64 block in bald()


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[N, T] -> [N]`` mean over real words; 0 for empty sentences."""
    counts = mask.sum(axis=1)
    total = np.where(mask, values, 0.0).sum(axis=1)
    return np.where(counts > 0, total / np.maximum(counts, 1), 0.0)


def _masked_max(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[N, T] -> [N]`` max over real words; 0 for empty sentences."""
    out = np.where(mask, values, -np.inf).max(axis=1)
    return np.where(mask.any(axis=1), out, 0.0)


def entropy(probs: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy along ``axis`` (0·log 0 = 0)."""
    return -(probs * np.log(np.clip(probs, _TINY, None))).sum(axis=axis)


def least_confidence(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``1 - min over words of max_c p``: the least confident word decides."""
    return _masked_max(1.0 - probs.max(axis=-1), mask)


def mnlp(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``-(1/n) Σ_words log max_c p``: minus the maximum normalised log-probability.

    The greedy tag sequence's log-probability under independent word predictions,
    divided by the number of words; the lowest MNLP is the most informative.
    """
    return _masked_mean(-np.log(np.clip(probs.max(axis=-1), _TINY, None)), mask)


def mean_entropy(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over words of the label entropy."""
    return _masked_mean(entropy(probs), mask)


def max_entropy(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Max over words of the label entropy."""
    return _masked_max(entropy(probs), mask)


def margin(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``1 - min over words of (p_top1 - p_top2)``: the word closest to a tie decides."""
    if probs.shape[-1] < 2:
        return np.zeros(probs.shape[0])
    top2 = np.partition(probs, probs.shape[-1] - 2, axis=-1)[..., -2:]
    gap = top2[..., 1] - top2[..., 0]
    return _masked_max(1.0 - gap, mask)


def bald(samples: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mutual information between labels and weights, from MC dropout, mean over words.

    ``samples [N, T, K, C]``: K stochastic passes. Per word ``H[mean_k p] - mean_k H[p]``
    (clipped at 0 against rounding), averaged over words. Zero when every pass agrees
    (a deterministic model).
    """
    info = np.empty(mask.shape)
    for start in range(0, samples.shape[0], _CHUNK):  # float64 in bounded chunks of sentences
        block = samples[start:start + _CHUNK].astype(np.float64)
        expected = entropy(block.mean(axis=2))  # [n, T]
        aleatoric = entropy(block).mean(axis=2)  # [n, T]
        info[start:start + _CHUNK] = expected - aleatoric
    return _masked_mean(np.clip(info, 0.0, None), mask)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence along the last axis, in [0, ln 2]."""
    m = 0.5 * (p + q)
    log_m = np.log(np.clip(m, _TINY, None))
    kl_pm = (p * (np.log(np.clip(p, _TINY, None)) - log_m)).sum(axis=-1)
    kl_qm = (q * (np.log(np.clip(q, _TINY, None)) - log_m)).sum(axis=-1)
    return np.clip(0.5 * (kl_pm + kl_qm), 0.0, None)


def disagreement(student: np.ndarray, teacher: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over words of the Jensen-Shannon divergence between teacher and student.

    JS rather than KL: symmetric (neither model is the reference), bounded by ln 2, and
    finite when one model puts zero mass on a label.
    """
    return _masked_mean(js_divergence(student, teacher), mask)
