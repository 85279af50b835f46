"""Sentences to model inputs: sub-word tokenisation with first-sub-word labels, windows
for long sentences, dynamic-padding collation, and length-grouped batch samplers.

Alignment: each word's tag id goes on its FIRST sub-word; other sub-words and special
tokens get ``-100`` (ignored by the loss) and ``word_ids == -1``. Only fast (Rust)
tokenizers are accepted, called with ``is_split_into_words=True``.

Long sentences:
  * training (:func:`encode_sentences`): truncated to ``max_length`` sub-words; the words
    cut off carry no label, and the number of truncated sentences is returned so the
    caller can log one counted warning.
  * prediction (:func:`encode_windows`): split into overlapping windows of whole words;
    ``word_ids`` hold sentence-level word indices, so the caller merges windows by taking
    each word from the window where it is most central.

A word the tokenizer turns into no sub-word at all (e.g. only a zero-width character) is
replaced by the tokenizer's unknown token, so every word gets a prediction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from concner.errors import ConfigError, LabelSchemaError, ModelError
from concner.labels import LabelSchema
from concner.sentence import Sentence

IGNORE_INDEX = -100
NO_WORD = -1
#: a length-grouped sampler sorts groups of ``batch_size * GROUP_FACTOR`` shuffled items
GROUP_FACTOR = 50


@dataclass
class Encoded:
    """One model input sequence (a sentence, or one window of a long sentence).

    Attributes:
        input_ids: sub-word ids with the tokenizer's special tokens, length ``T``.
        labels: tag id on the first sub-word of each word, ``-100`` elsewhere (all ``-100``
            for unlabelled sentences and in prediction mode).
        word_ids: sentence-level word index on the first sub-word of each word, ``-1``
            elsewhere.
        n_words: number of words in the whole sentence (words cut off by truncation, or
            outside this window, are simply absent from ``word_ids``).
        sentence_index: position of the owning sentence in the input list.
    """

    input_ids: list[int]
    labels: list[int]
    word_ids: list[int]
    n_words: int
    sentence_index: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class _Tokenized:
    prefix: list[int]  # special tokens before the content
    content: list[int]  # sub-word ids of the words
    suffix: list[int]  # special tokens after the content
    word_starts: list[int]  # per word: index in content of its first sub-word
    word_ends: list[int]  # per word: end (exclusive) of its sub-words in content


def require_fast_tokenizer(tokenizer: Any) -> None:
    """Raise :class:`ModelError` unless ``tokenizer`` is a fast (Rust) tokenizer."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; word alignment needs one "
            "(a model folder with tokenizer.json)"
        )


def _call(tokenizer: Any, words: list[list[str]]):
    return tokenizer(words, is_split_into_words=True, add_special_tokens=True, truncation=False,
                     return_attention_mask=False, return_token_type_ids=False, verbose=False)


def _split(ids: list[int], word_ids: list[int | None], n_words: int) -> _Tokenized | None:
    """Split one tokenised sequence into specials and content; None if a word has no piece."""
    positions = [i for i, w in enumerate(word_ids) if w is not None]
    if not positions:
        if n_words:
            return None
        # empty sentence: the whole sequence is special tokens
        return _Tokenized(list(ids), [], [], [], [])
    first, last = positions[0], positions[-1]
    starts = [-1] * n_words
    ends = [-1] * n_words
    for pos in range(first, last + 1):
        w = word_ids[pos]
        if w is None:
            continue
        if starts[w] < 0:
            starts[w] = pos - first
        ends[w] = pos - first + 1
    if min(starts) < 0:
        return None
    return _Tokenized(list(ids[:first]), list(ids[first:last + 1]), list(ids[last + 1:]),
                      starts, ends)


def tokenize_sentences(tokenizer: Any, sentences: Sequence[Sentence]) -> list[_Tokenized]:
    """Tokenise all sentences in one batched call; words without sub-words become UNK."""
    require_fast_tokenizer(tokenizer)
    if not sentences:
        return []
    batch = _call(tokenizer, [list(s.tokens) for s in sentences])
    out: list[_Tokenized] = []
    for i, sentence in enumerate(sentences):
        tok = _split(batch["input_ids"][i], batch.word_ids(i), len(sentence.tokens))
        if tok is None:
            tok = _retokenize_with_unk(tokenizer, sentence)
        out.append(tok)
    return out


def _retokenize_with_unk(tokenizer: Any, sentence: Sentence) -> _Tokenized:
    single = _call(tokenizer, [list(sentence.tokens)])
    seen = {w for w in single.word_ids(0) if w is not None}
    unk = tokenizer.unk_token
    if unk is None:
        raise ModelError(
            f"sentence {sentence.id}: the tokenizer turns some words into no sub-word and has "
            "no unknown token to stand for them; remove those words or use another tokenizer"
        )
    words = [w if i in seen else unk for i, w in enumerate(sentence.tokens)]
    again = _call(tokenizer, [words])
    tok = _split(again["input_ids"][0], again.word_ids(0), len(words))
    if tok is None:
        raise ModelError(f"sentence {sentence.id}: some words yield no sub-word even as {unk!r}")
    return tok


def _label_ids(sentence: Sentence, schema: LabelSchema | None) -> list[int] | None:
    if schema is None or sentence.tags is None:
        return None
    try:
        return schema.encode(sentence.tags)
    except LabelSchemaError as exc:
        raise LabelSchemaError(f"sentence {sentence.id} ({sentence.lang}): {exc}") from None


def _build(tok: _Tokenized, lo: int, hi: int, first_word: int, end_word: int,
           label_ids: list[int] | None, n_words: int, sentence_index: int) -> Encoded:
    """Encoded for content pieces ``[lo, hi)``, owning words ``[first_word, end_word)``."""
    n_pre = len(tok.prefix)
    length = n_pre + (hi - lo) + len(tok.suffix)
    labels = [IGNORE_INDEX] * length
    word_ids = [NO_WORD] * length
    for w in range(first_word, end_word):
        start = tok.word_starts[w]
        if lo <= start < hi:
            pos = n_pre + start - lo
            word_ids[pos] = w
            if label_ids is not None:
                labels[pos] = label_ids[w]
    return Encoded(tok.prefix + tok.content[lo:hi] + tok.suffix, labels, word_ids, n_words,
                   sentence_index)


def _budget(tok: _Tokenized, max_length: int) -> int:
    budget = max_length - len(tok.prefix) - len(tok.suffix)
    if budget < 1:
        raise ConfigError(f"model.max_length={max_length} leaves no room beside special tokens")
    return budget


def encode_sentences(tokenizer: Any, sentences: Sequence[Sentence], schema: LabelSchema | None,
                     max_length: int) -> tuple[list[Encoded], int]:
    """Training encoding: one :class:`Encoded` per sentence, at most ``max_length`` long.

    Labels come from ``sentence.tags`` through ``schema`` (all ``-100`` when ``schema`` is
    None or the sentence is unlabelled). Longer sentences are truncated: words whose first
    sub-word falls beyond the limit get no label. Returns ``(encoded, n_truncated)``.
    """
    encoded: list[Encoded] = []
    n_truncated = 0
    for index, (sentence, tok) in enumerate(zip(sentences, tokenize_sentences(tokenizer, sentences))):
        budget = _budget(tok, max_length)
        hi = len(tok.content)
        if hi > budget:
            n_truncated += 1
            hi = budget
        n = len(sentence.tokens)
        encoded.append(_build(tok, 0, hi, 0, n, _label_ids(sentence, schema), n, index))
    return encoded, n_truncated


def window_bounds(word_starts: Sequence[int], word_ends: Sequence[int], budget: int,
                  stride: int) -> list[tuple[int, int, int, int]]:
    """Windows of whole words over a sentence's content pieces.

    Each window is ``(lo, hi, first_word, end_word)``: content pieces ``[lo, hi)`` holding
    words ``[first_word, end_word)``, at most ``budget`` pieces. Consecutive windows share
    about ``stride`` pieces (whole words). A single word longer than ``budget`` is cut.
    """
    n_words = len(word_starts)
    if n_words == 0:
        return [(0, 0, 0, 0)]
    windows = []
    a = 0
    while True:
        lo = word_starts[a]
        end = a
        while end < n_words and word_ends[end] - lo <= budget:
            end += 1
        if end == a:  # one word longer than the budget: keep its first pieces
            end, hi = a + 1, lo + budget
        else:
            hi = word_ends[end - 1]
        windows.append((lo, hi, a, end))
        if end >= n_words:
            return windows
        b = a + 1
        while b < end and hi - word_starts[b] > stride:
            b += 1
        a = b


def encode_windows(tokenizer: Any, sentences: Sequence[Sentence], max_length: int,
                   stride: int) -> list[Encoded]:
    """Prediction encoding: every sentence as one or more windows of at most ``max_length``
    sub-words, consecutive windows overlapping by about ``stride`` sub-words of whole words.

    Labels are all ``-100``; ``word_ids`` are sentence-level, ``sentence_index`` names the
    owner. Windows of one sentence are consecutive in the returned list.
    """
    if stride < 0:
        raise ConfigError(f"model.window_stride={stride} must be >= 0")
    encoded: list[Encoded] = []
    for index, (sentence, tok) in enumerate(zip(sentences, tokenize_sentences(tokenizer, sentences))):
        budget = _budget(tok, max_length)
        if stride >= budget and len(tok.content) > budget:
            raise ConfigError(
                f"model.window_stride={stride} must be smaller than max_length minus special "
                f"tokens ({budget})"
            )
        n = len(sentence.tokens)
        if len(tok.content) <= budget:
            encoded.append(_build(tok, 0, len(tok.content), 0, n, None, n, index))
            continue
        for lo, hi, first, end in window_bounds(tok.word_starts, tok.word_ends, budget, stride):
            encoded.append(_build(tok, lo, hi, first, end, None, n, index))
    return encoded


class Collator:
    """Pads a list of :class:`Encoded` to the longest one in the batch.

    Returns ``input_ids``, ``attention_mask`` (1 on real tokens), ``labels`` (``-100`` on
    padding) and ``word_ids`` (``-1`` on padding), each ``[B, T]`` long, and
    ``sentence_index`` ``[B]`` long.
    """

    def __init__(self, pad_token_id: int | None):
        if pad_token_id is None:
            raise ModelError("the tokenizer has no padding token; set tokenizer.pad_token")
        self.pad_token_id = int(pad_token_id)

    def __call__(self, batch: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        if not batch:
            raise ValueError("cannot collate an empty batch")
        longest = max(len(e) for e in batch)
        lengths = np.array([len(e) for e in batch], dtype=np.int64)  # [B]
        attention = (np.arange(longest)[None, :] < lengths[:, None]).astype(np.int64)

        def pad(rows: list[list[int]], fill: int) -> torch.Tensor:  # [B, T] long
            out = np.full((len(rows), longest), fill, dtype=np.int64)
            for i, row in enumerate(rows):
                out[i, :len(row)] = row
            return torch.from_numpy(out)

        return {
            "input_ids": pad([e.input_ids for e in batch], self.pad_token_id),
            "attention_mask": torch.from_numpy(attention),
            "labels": pad([e.labels for e in batch], IGNORE_INDEX),
            "word_ids": pad([e.word_ids for e in batch], NO_WORD),
            "sentence_index": torch.tensor([e.sentence_index for e in batch], dtype=torch.long),
        }


class LengthGroupedBatchSampler:
    """Batches of indices whose lengths are similar, in shuffled batch order.

    Each epoch the indices are shuffled, cut into groups of ``batch_size * GROUP_FACTOR``,
    each group sorted by length (longest first) and cut into batches; the batches are then
    shuffled. With ``shuffle=False`` all indices are sorted by length (longest first, ties
    by index) and batches come in that order. Deterministic for a given seed and epoch
    (:meth:`set_epoch`). Every index appears exactly once per epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, shuffle: bool = True):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.lengths = [int(n) for n in lengths]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def _chunks(self, order: list[int]) -> list[list[int]]:
        return [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(range(len(self.lengths)))
        if not self.shuffle:
            indices.sort(key=lambda i: (-self.lengths[i], i))
            yield from self._chunks(indices)
            return
        rng = random.Random(f"{self.seed}:{self.epoch}")
        rng.shuffle(indices)
        group = self.batch_size * GROUP_FACTOR
        batches: list[list[int]] = []
        for k in range(0, len(indices), group):
            part = sorted(indices[k:k + group], key=lambda i: -self.lengths[i])
            batches.extend(self._chunks(part))
        rng.shuffle(batches)
        yield from batches


class PairBatchSampler(LengthGroupedBatchSampler):
    """:class:`LengthGroupedBatchSampler` over PAIR indices: ``lengths[i]`` is the length
    of pair ``i`` (the longer of a source sentence and its translation). The trainer
    collates ``source[i]`` and ``translation[i]`` for every ``i`` of a batch, so a sentence
    and its translation always share a batch (the in-batch negatives of TCL are the
    other pairs)."""

    @classmethod
    def from_pairs(cls, source_lengths: Sequence[int], target_lengths: Sequence[int],
                   batch_size: int, seed: int, shuffle: bool = True) -> PairBatchSampler:
        if len(source_lengths) != len(target_lengths):
            raise ValueError(
                f"{len(source_lengths)} source lengths for {len(target_lengths)} translations"
            )
        lengths = [max(a, b) for a, b in zip(source_lengths, target_lengths)]
        return cls(lengths, batch_size, seed, shuffle)
