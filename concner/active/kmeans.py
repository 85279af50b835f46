"""Seeded k-means (k-means++ initialisation, Lloyd iterations) in NumPy.

Small and dependency-free: the diversity strategy clusters at most a few hundred
candidate sentence representations, where this is fast and fully deterministic per seed.
"""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x [N, H]`` scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _sq_dists(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``[N, H] x [K, H] -> [N, K]`` squared Euclidean distances (clipped at 0)."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return np.clip(d, 0.0, None)


def kmeans_pp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: indices of ``k`` distinct rows of ``x [N, H]`` (k <= N).

    Each next centre is drawn with probability proportional to its squared distance to
    the nearest centre so far; when every remaining point coincides with a centre, the
    draw is uniform over the points not yet chosen.
    """
    n = x.shape[0]
    chosen = [int(rng.integers(n))]
    nearest = _sq_dists(x, x[chosen])[:, 0]
    for _ in range(1, k):
        weights = nearest.copy()
        weights[chosen] = 0.0
        if weights.sum() <= 0:
            weights = np.ones(n)
            weights[chosen] = 0.0
        idx = int(rng.choice(n, p=weights / weights.sum()))
        chosen.append(idx)
        nearest = np.minimum(nearest, _sq_dists(x, x[idx:idx + 1])[:, 0])
    return np.array(chosen)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 100) -> np.ndarray:
    """Cluster the rows of ``x [N, H]`` into ``min(k, N)`` clusters; returns labels ``[N]``.

    Lloyd iterations until the assignment stops changing (or ``max_iter``). A cluster that
    empties keeps its previous centre, so labels are always in ``range(k)``.
    """
    n = x.shape[0]
    k = min(k, n)
    rng = np.random.default_rng(seed)
    centres = x[kmeans_pp_init(x, k, rng)].copy()
    labels = np.full(n, -1)
    for _ in range(max_iter):
        new = _sq_dists(x, centres).argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return labels
