"""Encoding: first-sub-word alignment, truncation, windows, collation and samplers."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import make_tiny_tokenizer

from concner.errors import ConfigError, LabelSchemaError, ModelError
from concner.labels import LabelSchema
from concner.method.encoding import (
    IGNORE_INDEX,
    NO_WORD,
    Collator,
    Encoded,
    LengthGroupedBatchSampler,
    PairBatchSampler,
    encode_sentences,
    encode_windows,
    window_bounds,
)
from concner.sentence import Sentence

torch.set_num_threads(1)
SCHEMA = LabelSchema(["PER", "ORG", "LOC"])


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


def _first_pieces(tokenizer, enc: Encoded) -> dict[int, str]:
    pieces = tokenizer.convert_ids_to_tokens(enc.input_ids)
    return {w: pieces[p] for p, w in enumerate(enc.word_ids) if w != NO_WORD}


def test_labels_sit_on_first_subword_only(tokenizer):
    tokens = ["John", "xyzzy", "visited", "qwerty-uiop", "Paris", "."]
    tags = ["B-PER", "B-ORG", "O", "B-LOC", "I-LOC", "O"]
    sentence = Sentence.from_tokens("s1", "en", tokens, tags)
    [enc], n_truncated = encode_sentences(tokenizer, [sentence], SCHEMA, 128)

    assert n_truncated == 0
    assert len(enc.input_ids) == len(enc.labels) == len(enc.word_ids)
    assert enc.n_words == len(tokens) and enc.sentence_index == 0
    # one labelled position per word, in word order, with that word's tag
    positions = [p for p, w in enumerate(enc.word_ids) if w != NO_WORD]
    assert [enc.word_ids[p] for p in positions] == list(range(len(tokens)))
    assert [enc.labels[p] for p in positions] == SCHEMA.encode(tags)
    assert all(enc.labels[p] == IGNORE_INDEX for p in range(len(enc)) if p not in positions)
    # the labelled piece is the first piece of the word, and words split into several pieces
    first = _first_pieces(tokenizer, enc)
    for w, word in enumerate(tokens):
        assert first[w] == tokenizer.tokenize(word)[0]
    assert len(enc.input_ids) > len(tokens) + 2  # "xyzzy" and "qwerty-uiop" were split
    assert enc.input_ids[0] == tokenizer.cls_token_id and enc.input_ids[-1] == tokenizer.sep_token_id


def test_word_without_subwords_becomes_unk(tokenizer):
    sentence = Sentence.from_tokens("s", "en", ["John", "\u200b", "Paris"], ["B-PER", "O", "B-LOC"])
    [enc], _ = encode_sentences(tokenizer, [sentence], SCHEMA, 128)
    assert _first_pieces(tokenizer, enc) == {0: "John", 1: tokenizer.unk_token, 2: "Paris"}
    [win] = encode_windows(tokenizer, [sentence], 128, 8)
    assert sorted(w for w in win.word_ids if w != NO_WORD) == [0, 1, 2]


def test_unlabelled_and_schemaless_give_ignore_labels(tokenizer):
    labelled = Sentence.from_tokens("a", "en", ["John"], ["B-PER"])
    unlabelled = Sentence.from_tokens("b", "en", ["Paris"])
    encs, _ = encode_sentences(tokenizer, [labelled, unlabelled], SCHEMA, 128)
    assert set(encs[1].labels) == {IGNORE_INDEX}
    assert encs[1].sentence_index == 1
    encs, _ = encode_sentences(tokenizer, [labelled], None, 128)
    assert set(encs[0].labels) == {IGNORE_INDEX}


def test_unknown_label_names_the_sentence(tokenizer):
    bad = Sentence.from_tokens("sent-42", "en", ["John"], ["B-MISC"])
    with pytest.raises(LabelSchemaError, match="sent-42"):
        encode_sentences(tokenizer, [bad], SCHEMA, 128)


def test_truncation_is_counted_and_keeps_a_prefix(tokenizer):
    tokens = [f"w{i}" for i in range(40)]
    tags = ["B-PER" if i % 3 == 0 else "O" for i in range(40)]
    long = Sentence.from_tokens("long", "en", tokens, tags)
    short = Sentence.from_tokens("short", "en", tokens[:3], tags[:3])
    (enc_long, enc_short), n_truncated = encode_sentences(tokenizer, [long, short], SCHEMA, 16)
    assert n_truncated == 1
    assert len(enc_short) < 16 and set(enc_short.word_ids) == {NO_WORD, 0, 1, 2}
    assert len(enc_long) == 16 and enc_long.input_ids[-1] == tokenizer.sep_token_id
    [full], _ = encode_sentences(tokenizer, [long], SCHEMA, 4096)
    assert enc_long.input_ids[:15] == full.input_ids[:15]
    kept = [w for w in enc_long.word_ids if w != NO_WORD]
    assert kept == list(range(len(kept))) and 0 < len(kept) < 40
    assert [enc_long.labels[p] for p, w in enumerate(enc_long.word_ids) if w != NO_WORD] == \
        SCHEMA.encode(tags[: len(kept)])


def test_windows_cover_every_word_and_match_the_full_tokenisation(tokenizer):
    rng = random.Random(3)
    tokens = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 6))) for _ in range(50)]
    sentence = Sentence.from_tokens("w", "en", tokens)
    [full], _ = encode_sentences(tokenizer, [sentence], None, 4096)
    windows = encode_windows(tokenizer, [sentence], 20, 6)
    assert len(windows) > 2
    full_content = full.input_ids[1:-1]
    seen: dict[int, int] = {}
    for win in windows:
        assert len(win) <= 20 and win.sentence_index == 0 and win.n_words == 50
        assert win.input_ids[0] == tokenizer.cls_token_id and win.input_ids[-1] == tokenizer.sep_token_id
        words = [w for w in win.word_ids if w != NO_WORD]
        assert words == list(range(words[0], words[-1] + 1))
        # a window is a contiguous slice of the full content starting at a word
        content = win.input_ids[1:-1]
        start = full.word_ids.index(words[0]) - 1
        assert full_content[start:start + len(content)] == content
        for w in words:
            seen[w] = seen.get(w, 0) + 1
    assert sorted(seen) == list(range(50))
    assert any(count > 1 for count in seen.values())  # windows overlap


def test_short_sentence_is_one_window_equal_to_training_encoding(tokenizer):
    sentence = Sentence.from_tokens("s", "en", ["John", "lives", "in", "Paris"])
    [win] = encode_windows(tokenizer, [sentence], 128, 32)
    [enc], _ = encode_sentences(tokenizer, [sentence], None, 128)
    assert win == enc


def test_window_stride_must_fit(tokenizer):
    sentence = Sentence.from_tokens("s", "en", [f"w{i}" for i in range(40)])
    with pytest.raises(ConfigError, match="window_stride"):
        encode_windows(tokenizer, [sentence], 16, 14)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=60),
    budget=st.integers(1, 30),
    stride_frac=st.floats(0, 0.99),
)
def test_window_bounds_properties(sizes, budget, stride_frac):
    starts, ends, pos = [], [], 0
    for n in sizes:
        starts.append(pos)
        pos += n
        ends.append(pos)
    stride = int(stride_frac * budget)
    windows = window_bounds(starts, ends, budget, stride)
    covered = set()
    for (lo, hi, first, end), nxt in zip(windows, windows[1:] + [None]):
        assert 0 < hi - lo <= budget
        assert lo == starts[first]
        assert hi == ends[end - 1] or (end == first + 1 and hi - lo == budget)
        covered.update(range(first, end))
        if nxt is not None:
            assert first < nxt[2] <= end  # progress, and no word skipped
    assert covered == set(range(len(sizes)))
    assert windows[-1][3] == len(sizes)


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    sentence = Sentence.from_tokens("s", "en", ["a"])
    with pytest.raises(ModelError, match="fast"):
        encode_sentences(Slow(), [sentence], SCHEMA, 16)


def test_collator_pads_to_longest_in_batch():
    a = Encoded([2, 10, 11, 3], [-100, 1, 2, -100], [-1, 0, 1, -1], 2, 0)
    b = Encoded([2, 12, 3], [-100, 0, -100], [-1, 0, -1], 1, 5)
    batch = Collator(pad_token_id=0)([a, b])
    assert batch["input_ids"].shape == (2, 4) and batch["input_ids"].dtype == torch.long
    assert batch["input_ids"].tolist() == [[2, 10, 11, 3], [2, 12, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 1, 2, -100], [-100, 0, -100, -100]]
    assert batch["word_ids"].tolist() == [[-1, 0, 1, -1], [-1, 0, -1, -1]]
    assert batch["sentence_index"].tolist() == [0, 5]
    assert Collator(0)([b])["input_ids"].shape == (1, 3)  # no padding beyond the batch
    with pytest.raises(ModelError):
        Collator(None)


def _spread(batches, lengths):
    return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)


def test_length_grouped_sampler():
    rng = random.Random(0)
    lengths = [rng.randint(3, 120) for _ in range(500)]
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=7)
    first = list(sampler)
    assert len(first) == len(sampler) == 32
    assert sorted(i for b in first for i in b) == list(range(500))
    assert first == list(LengthGroupedBatchSampler(lengths, 16, seed=7))  # deterministic
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(i for b in second for i in b) == list(range(500))
    # grouped: far less length spread inside batches than random batches
    shuffled = list(range(500))
    rng.shuffle(shuffled)
    random_batches = [shuffled[k:k + 16] for k in range(0, 500, 16)]
    assert _spread(first, lengths) * 4 < _spread(random_batches, lengths)
    # batch order is shuffled, not sorted by length
    maxima = [max(lengths[i] for i in b) for b in first]
    assert maxima != sorted(maxima, reverse=True)


def test_unshuffled_sampler_sorts_by_length():
    lengths = [5, 9, 1, 9, 3]
    batches = list(LengthGroupedBatchSampler(lengths, 2, seed=0, shuffle=False))
    assert batches == [[1, 3], [0, 4], [2]]


def test_pair_sampler_uses_the_longer_side():
    src = [10, 2, 30, 4]
    tgt = [1, 50, 3, 4]
    sampler = PairBatchSampler.from_pairs(src, tgt, 2, seed=1, shuffle=False)
    assert sampler.lengths == [10, 50, 30, 4]
    assert list(sampler) == [[1, 2], [0, 3]]
    with pytest.raises(ValueError):
        PairBatchSampler.from_pairs([1], [1, 2], 2, seed=1)
