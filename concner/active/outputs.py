"""What a query strategy sees: model outputs over a pool, and what it returns.

:class:`PoolOutputs` keeps the per-sentence arrays the model gave (ragged: one row per
word) and pads them once, lazily, into dense tensors with a mask so every strategy scores
the whole pool in one batched NumPy operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from concner.errors import DataFormatError, ModelError


@dataclass(frozen=True)
class Selection:
    """One proposed sentence. ``score``: the strategy's informativeness, higher first."""

    sentence_id: str
    score: float


def repeated_ids(ids: Iterable[str]) -> list[str]:
    """Every id that occurs again after its first occurrence, in the order it recurs."""
    seen: set[str] = set()
    repeats = []
    for sid in ids:
        if sid in seen:
            repeats.append(sid)
        seen.add(sid)
    return repeats


def pad_ragged(arrays: Sequence[np.ndarray], dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Pad per-sentence arrays ``[n_i, *rest]`` into ``[N, Tmax, *rest]`` plus a mask.

    Returns ``(padded, mask)`` with ``mask[i, t]`` true for the ``n_i`` real rows of
    sentence i; padding is zero. Vectorised: one concatenation and one scatter, no loop
    over sentences. ``Tmax`` is at least 1 so an all-empty pool still has a valid shape.
    """
    if not arrays:
        raise ModelError("cannot pad an empty list of arrays (the pool is empty)")
    rest = arrays[0].shape[1:]
    lengths = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
    n, t_max = len(arrays), max(1, int(lengths.max()))
    padded = np.zeros((n, t_max, *rest), dtype=dtype)
    mask = np.arange(t_max)[None, :] < lengths[:, None]
    if lengths.sum():
        flat = np.concatenate([np.asarray(a, dtype=dtype).reshape(-1, *rest) for a in arrays])
        padded[mask] = flat  # boolean-mask assignment fills rows in sentence-major order
    return padded, mask


@dataclass
class PoolOutputs:
    """Model outputs over a pool of N sentences.

    Attributes:
        sentence_ids: N unique ids, in pool order.
        word_probs: per sentence ``[n_words, C]`` label probabilities (rows sum to 1);
            ``n_words`` may be 0 (empty sentence).
        mc_samples: per sentence ``[K, n_words, C]`` probabilities from K forward passes
            with dropout on (BALD), or None.
        representations: ``[N, H]`` sentence representations (diversity), or None.
        teacher_probs: per sentence ``[n_words, C]`` probabilities of the source-trained
            teacher (``word_probs`` then come from the target-distilled student), or None.
    """

    sentence_ids: list[str]
    word_probs: list[np.ndarray]
    mc_samples: list[np.ndarray] | None = None
    representations: np.ndarray | None = None
    teacher_probs: list[np.ndarray] | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.sentence_ids = [str(s) for s in self.sentence_ids]
        n = len(self.sentence_ids)
        repeats = repeated_ids(self.sentence_ids)
        if repeats:
            raise DataFormatError(f"sentence id {repeats[0]!r} appears twice in the pool; "
                                  "give every pool sentence a unique id")
        self.word_probs = [np.asarray(p) for p in self.word_probs]
        if len(self.word_probs) != n:
            raise ModelError(f"{len(self.word_probs)} word-probability arrays for {n} sentences")
        n_classes = {p.shape[1] for p in self.word_probs if p.ndim == 2}
        if any(p.ndim != 2 for p in self.word_probs) or len(n_classes) > 1:
            raise ModelError("word_probs must be 2-D arrays [n_words, C] with one C for the pool")
        lengths = [p.shape[0] for p in self.word_probs]
        if self.mc_samples is not None:
            self.mc_samples = [np.asarray(s) for s in self.mc_samples]
            if len(self.mc_samples) != n:
                raise ModelError(f"{len(self.mc_samples)} MC-sample arrays for {n} sentences")
            passes = {s.shape[0] for s in self.mc_samples if s.ndim == 3}
            for sid, s, length in zip(self.sentence_ids, self.mc_samples, lengths):
                if s.ndim != 3 or s.shape[1] != length or s.shape[2:] != self.word_probs[0].shape[1:]:
                    raise ModelError(f"MC samples of sentence {sid!r} have shape {s.shape}; "
                                     f"expected [K, {length}, C]")
            if len(passes) > 1:
                raise ModelError(f"MC samples have different numbers of passes: {sorted(passes)}")
        if self.representations is not None:
            self.representations = np.asarray(self.representations, dtype=np.float64)
            if self.representations.ndim != 2 or self.representations.shape[0] != n:
                raise ModelError(f"representations have shape {self.representations.shape}; "
                                 f"expected [{n}, H]")
        if self.teacher_probs is not None:
            self.teacher_probs = [np.asarray(p) for p in self.teacher_probs]
            if len(self.teacher_probs) != n:
                raise ModelError(f"{len(self.teacher_probs)} teacher arrays for {n} sentences")
            for sid, t, s in zip(self.sentence_ids, self.teacher_probs, self.word_probs):
                if t.shape != s.shape:
                    raise ModelError(f"teacher probabilities of sentence {sid!r} have shape "
                                     f"{t.shape}, the student's {s.shape}; both must tag the "
                                     "same words with the same label schema")

    def __len__(self) -> int:
        return len(self.sentence_ids)

    @property
    def lengths(self) -> np.ndarray:
        """``[N]`` number of words per sentence."""
        return np.array([p.shape[0] for p in self.word_probs], dtype=np.int64)

    def padded_probs(self) -> tuple[np.ndarray, np.ndarray]:
        """``([N, Tmax, C] float64, [N, Tmax] bool mask)`` of ``word_probs`` (cached)."""
        if "probs" not in self._cache:
            self._cache["probs"] = pad_ragged(self.word_probs)
        return self._cache["probs"]

    def padded_teacher(self) -> np.ndarray:
        """``[N, Tmax, C]`` teacher probabilities, aligned with :meth:`padded_probs`."""
        if self.teacher_probs is None:
            raise ModelError("no teacher probabilities in these pool outputs")
        if "teacher" not in self._cache:
            self._cache["teacher"] = pad_ragged(self.teacher_probs)[0]
        return self._cache["teacher"]

    def padded_mc(self) -> tuple[np.ndarray, np.ndarray]:
        """``([N, Tmax, K, C] float32, [N, Tmax] mask)`` of the MC-dropout samples (cached).

        float32 keeps a 10,000-sentence pool with K=8 passes at a few hundred MB at most.
        """
        if self.mc_samples is None:
            raise ModelError("no MC-dropout samples in these pool outputs")
        if "mc" not in self._cache:
            per_word = [np.moveaxis(s, 0, 1) for s in self.mc_samples]  # [n_words, K, C]
            self._cache["mc"] = pad_ragged(per_word, dtype=np.float32)
        return self._cache["mc"]
