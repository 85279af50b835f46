"""Predictor: batch-size independence, reload, windows, offsets in hard scripts, uncertainty."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random

import numpy as np
import pytest
import torch
from tiny import make_tiny_bundle

from concner.config import ModelConfig
from concner.errors import ConfigError
from concner.labels import LabelSchema, iob2_errors, spans_to_tags
from concner.method.encoding import encode_windows
from concner.method.inference import Predictor, resolve_device, spans_from_tags, viterbi_iob2
from concner.method.model import NerBundle
from concner.sentence import Sentence

torch.set_num_threads(1)
SCRIPT_WORDS = ["القاهرة", "مرحبا", "שלום", "ירושלים", "東京", "北京", "Zürich"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Tiny model with short windows so that long sentences are windowed."""
    config = ModelConfig(max_length=16, window_stride=4)
    b = make_tiny_bundle(tmp_path_factory.mktemp("tiny"), config=config, seed=1,
                         vocab_words=SCRIPT_WORDS)
    b.model.eval()
    return b


def _corpus(n: int = 40, seed: int = 0) -> list[Sentence]:
    rng = random.Random(seed)
    vocab = ["John", "lives", "in", "Paris", "the", "United", "Nations", "xyzzy", "Berlin", "!",
             "qwertyuiop", "7", "Google", "of"]
    sentences = []
    for i in range(n):
        length = rng.choice([1, 2, 5, 9, 14, 30, 45])
        sentences.append(Sentence.from_tokens(f"s{i}", "en", [rng.choice(vocab) for _ in range(length)]))
    return sentences


def test_batch_size_does_not_change_predictions(bundle):
    sentences = _corpus()
    one = Predictor(bundle, batch_size=1, device="cpu").predict(sentences)
    many = Predictor(bundle, batch_size=32, device="cpu").predict(sentences)
    assert [p.sentence_id for p in one] == [s.id for s in sentences]
    assert any(len(s) > 14 for s in sentences)  # some are windowed (max_length 16)
    for a, b, s in zip(one, many, sentences):
        assert a.tags == b.tags
        assert a.word_probs.shape == (len(s), len(bundle.schema))
        assert np.allclose(a.word_probs, b.word_probs, atol=1e-5)
        assert [sp.key() for sp in a.spans] == [sp.key() for sp in b.spans]
        assert math.isclose(a.mean_entropy, b.mean_entropy, abs_tol=1e-5)
    # the order of the input does not matter either
    shuffled = list(reversed(sentences))
    again = {p.sentence_id: p for p in Predictor(bundle, batch_size=7).predict(shuffled)}
    for a in one:
        assert again[a.sentence_id].tags == a.tags
        assert np.allclose(again[a.sentence_id].word_probs, a.word_probs, atol=1e-5)


def test_saved_folder_reloads_to_identical_predictions(bundle, tmp_path):
    sentences = _corpus(12, seed=5)
    before = Predictor(bundle, batch_size=8).predict(sentences)
    bundle.save(tmp_path / "model")
    after = Predictor(NerBundle.load(tmp_path / "model"), batch_size=8).predict(sentences)
    for a, b in zip(before, after):
        assert a.tags == b.tags
        assert np.array_equal(a.word_probs, b.word_probs)


def _direct_probs(bundle, sentence: Sentence) -> np.ndarray:
    """Reference: one unpadded forward pass, softmax at each word's first sub-word."""
    enc = bundle.tokenizer([sentence.tokens], is_split_into_words=True, return_tensors="pt")
    word_ids = enc.word_ids(0)
    with torch.no_grad():
        logits = bundle.model(enc["input_ids"], enc["attention_mask"]).logits[0]
    firsts = [word_ids.index(w) for w in range(len(sentence))]
    return torch.softmax(logits[firsts], dim=-1).numpy()


def test_short_sentence_matches_a_direct_forward_pass(bundle):
    sentence = Sentence.from_tokens("s", "en", ["John", "xyzzy", "in", "Paris"])
    [pred] = Predictor(bundle).predict([sentence])
    assert np.allclose(pred.word_probs, _direct_probs(bundle, sentence), atol=1e-5)


def test_long_sentence_takes_each_word_from_its_most_central_window(bundle):
    tokens = [f"w{i}" for i in range(25)]  # 2 sub-words each: many windows of 16
    sentence = Sentence.from_tokens("long", "en", tokens)
    [pred] = Predictor(bundle).predict([sentence])
    # reference: run every window on its own, choose by distance to the window edge
    windows = encode_windows(bundle.tokenizer, [sentence], 16, 4)
    assert len(windows) > 2
    best = {}
    for k, win in enumerate(windows):
        with torch.no_grad():
            logits = bundle.model(torch.tensor([win.input_ids]),
                                  torch.ones(1, len(win), dtype=torch.long)).logits[0]
        probs = torch.softmax(logits, dim=-1).numpy()
        for pos, w in enumerate(win.word_ids):
            if w < 0:
                continue
            centrality = min(pos, len(win) - 1 - pos)
            if w not in best or centrality > best[w][0]:
                best[w] = (centrality, probs[pos])
    assert sorted(best) == list(range(25))
    expected = np.stack([best[w][1] for w in range(25)])
    assert np.allclose(pred.word_probs, expected, atol=1e-5)
    # the model sees context: a word's probabilities differ between windows
    assert not np.allclose(pred.word_probs, _direct_probs_per_word(bundle, tokens), atol=1e-4)


def _direct_probs_per_word(bundle, tokens):
    return np.concatenate([_direct_probs(bundle, Sentence.from_tokens("x", "en", [t]))
                           for t in tokens])


def _entity_everywhere(bundle) -> NerBundle:
    """A copy whose classifier predicts B-PER for every word."""
    forced = bundle.clone()
    with torch.no_grad():
        forced.model.classifier.weight.zero_()
        forced.model.classifier.bias.zero_()
        forced.model.classifier.bias[bundle.schema.tag_to_id["B-PER"]] = 5.0
    return forced


@pytest.mark.parametrize("text,lang", [
    ("😀 John 👍🏽 visited Zürich 🇩🇪 !", "en"),
    ("مرحبا بكم في القاهرة، يا John", "ar"),
    ("שלום ירושלים \u200f(John)", "he"),
    ("我住在北京和東京。", "zh"),
    ("e\u0301cole\u200b Paris\u200d x", "fr"),
])
def test_span_offsets_index_the_original_text(bundle, text, lang):
    predictor = Predictor(_entity_everywhere(bundle))
    [pred] = predictor.predict_texts([text], lang)
    [sentence] = Predictor.texts_to_sentences([text], lang)
    assert pred.tags == ["B-PER"] * len(sentence)
    assert [(s.start, s.end) for s in pred.spans] == sentence.offsets
    assert [text[s.start:s.end] for s in pred.spans] == sentence.tokens
    assert spans_to_tags(pred.spans, sentence.offsets)[0] == pred.tags
    if lang == "zh":
        assert len(sentence) == len("我住在北京和東京。")  # one word per character
    record = pred.to_dict(sentence)
    assert [s["text"] for s in record["spans"]] == sentence.tokens


def test_span_scores_are_mean_word_confidence():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC"]
    offsets = [(0, 4), (5, 9), (10, 12), (13, 18), (19, 22), (23, 25), (26, 30)]
    scores = np.array([0.9, 0.5, 0.99, 0.6, 0.3, 0.4, 0.8])
    spans = spans_from_tags(tags, offsets, scores)
    assert [(s.start, s.end, s.label) for s in spans] == [(0, 9, "PER"), (13, 18, "LOC"),
                                                           (19, 30, "LOC")]
    assert [s.score for s in spans] == pytest.approx([0.7, 0.6, 0.5])


def test_uncertainty_figures(bundle):
    sentences = _corpus(6, seed=2)
    preds = Predictor(bundle, decoding="argmax").predict(sentences)
    for p in preds:
        probs = p.word_probs
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        entropy = -(probs * np.log(probs)).sum(axis=1)
        assert p.mean_entropy == pytest.approx(float(entropy.mean()), abs=1e-5)
        assert p.min_max_prob == pytest.approx(float(probs.max(axis=1).min()))
        assert p.tags == bundle.schema.decode_valid(probs.argmax(axis=1))
    # a model that knows nothing: uniform distributions, maximal entropy
    blank = bundle.clone()
    with torch.no_grad():
        blank.model.classifier.weight.zero_()
        blank.model.classifier.bias.zero_()
    [p] = Predictor(blank).predict(sentences[:1])
    n_tags = len(bundle.schema)
    assert p.mean_entropy == pytest.approx(math.log(n_tags), abs=1e-5)
    assert p.min_max_prob == pytest.approx(1 / n_tags, abs=1e-6)


def test_empty_inputs(bundle):
    predictor = Predictor(bundle)
    assert predictor.predict([]) == []
    [p] = predictor.predict_texts(["   "], "en")
    assert p.tags == [] and p.spans == [] and p.word_probs.shape == (0, len(bundle.schema))
    assert predictor.sentence_embeddings([]).shape == (0, 32)


def test_training_mode_restored_and_mc_dropout(bundle):
    model_bundle = bundle.clone()
    model_bundle.model.dropout.p = 0.5
    sentences = _corpus(4, seed=3)
    predictor = Predictor(model_bundle)
    model_bundle.model.train()
    plain_a = predictor.word_probs(sentences)
    assert model_bundle.model.training  # restored after prediction
    plain_b = predictor.word_probs(sentences)
    assert all(np.array_equal(a, b) for a, b in zip(plain_a, plain_b))  # dropout was off
    model_bundle.model.eval()
    torch.manual_seed(0)
    mc = predictor.word_probs(sentences, mc_dropout=True)
    assert not model_bundle.model.training
    assert not all(np.allclose(a, b) for a, b in zip(plain_a, mc))


def test_sentence_embeddings_are_masked_means(bundle):
    sentences = [Sentence.from_tokens("a", "en", ["John", "lives", "in", "Paris"]),
                 Sentence.from_tokens("b", "en", ["Google"])]
    emb = Predictor(bundle, batch_size=2).sentence_embeddings(sentences)
    assert emb.shape == (2, 32) and emb.dtype == np.float32
    for row, s in enumerate(sentences):
        enc = bundle.tokenizer([s.tokens], is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            hidden = bundle.model(enc["input_ids"], enc["attention_mask"]).token_repr[0]
        assert np.allclose(emb[row], hidden.mean(dim=0).numpy(), atol=1e-5)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")


def test_predict_with_embeddings_is_predict_plus_embeddings_in_one_pass(bundle, monkeypatch):
    sentences = _corpus(25, seed=4)
    predictor = Predictor(bundle, batch_size=4, device="cpu")
    expected, expected_emb = predictor.predict(sentences), predictor.sentence_embeddings(sentences)
    calls = []
    run = predictor._run
    monkeypatch.setattr(predictor, "_run", lambda *a, **k: calls.append(k) or run(*a, **k))
    got, emb = predictor.predict_with_embeddings(sentences)
    assert len(calls) == 1 and calls[0]["embeddings"] is True
    assert emb.shape == (len(sentences), bundle.model.hidden_size)
    np.testing.assert_allclose(emb, expected_emb, atol=1e-5)
    for a, b in zip(got, expected):
        assert a.tags == b.tags and np.allclose(a.word_probs, b.word_probs, atol=1e-6)


def test_predict_in_chunks_does_not_depend_on_the_chunk(bundle):
    sentences = _corpus(11, seed=5)
    predictor = Predictor(bundle, batch_size=4, device="cpu")
    whole, emb = predictor.predict_with_embeddings(sentences)
    seen = []
    got, got_emb = predictor.predict_in_chunks(sentences, chunk=3, embeddings=True,
                                               on_chunk=seen.append)
    assert seen == [3, 3, 3, 2]
    np.testing.assert_allclose(got_emb, emb, atol=1e-5)
    assert [p.tags for p in got] == [p.tags for p in whole]
    plain, none = predictor.predict_in_chunks(sentences, chunk=4)
    assert none is None and [p.tags for p in plain] == [p.tags for p in whole]
    empty, empty_emb = predictor.predict_in_chunks([], chunk=4, embeddings=True)
    assert empty == [] and empty_emb.shape == (0, bundle.model.hidden_size)
    with pytest.raises(ConfigError, match="chunk"):
        predictor.predict_in_chunks(sentences, chunk=0)


def test_batch_size_must_be_positive(bundle):
    with pytest.raises(ConfigError, match="batch size"):
        Predictor(bundle, batch_size=0)


def test_predict_command_writes_jsonl(bundle, tmp_path, capsys):
    from concner.cli import main

    model_dir = tmp_path / "model"
    _entity_everywhere(bundle).save(model_dir)
    texts = ["😀 John visited Zürich", "مرحبا بكم في القاهرة", "我住在北京"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "pred.jsonl"
    code = main(["predict", "--model", str(model_dir), "--in", str(src), "--out", str(out),
                 "--format", "text", "--lang", "zh", "--batch-size", "2", "--device", "cpu",
                 "--decoding", "argmax"])
    assert code == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == texts
    for r in records:
        assert [s["text"] for s in r["spans"]] == r["tokens"]
        assert all(r["text"][s["start"]:s["end"]] == s["text"] for s in r["spans"])
        assert 0 < r["min_max_prob"] <= 1 and r["mean_entropy"] >= 0
    assert "predicted 3 sentences" in capsys.readouterr().err
    # a bad model folder is a one-line user error (exit code 2)
    assert main(["predict", "--model", str(tmp_path / "none"), "--in", str(src),
                 "--out", str(out), "--format", "text", "--lang", "en"]) == 2


def _brute_force_best_valid(probs: np.ndarray, tags: list[str]) -> tuple[float, list[int]]:
    best = (-np.inf, [])
    for seq in itertools.product(range(len(tags)), repeat=len(probs)):
        if iob2_errors([tags[i] for i in seq]):
            continue
        score = float(np.log(probs[np.arange(len(probs)), list(seq)]).sum())
        if score > best[0]:
            best = (score, list(seq))
    return best


def test_viterbi_finds_the_best_valid_sequence():
    tags = LabelSchema(["PER", "LOC"]).tags
    rng = np.random.default_rng(0)
    for n_words in [1, 2, 3, 4]:
        for _ in range(15):
            probs = rng.dirichlet(np.full(len(tags), 0.3), size=n_words)
            path = viterbi_iob2(probs, tags)
            assert not iob2_errors([tags[i] for i in path])
            best_score, _ = _brute_force_best_valid(probs, tags)
            score = float(np.log(probs[np.arange(n_words), path]).sum())
            assert score == pytest.approx(best_score, abs=1e-9)
            argmax = probs.argmax(axis=1).tolist()
            if not iob2_errors([tags[i] for i in argmax]):
                assert path == argmax
    assert viterbi_iob2(np.zeros((0, len(tags))), tags) == []


def test_predictor_decoding_option(bundle):
    sentences = _corpus(10, seed=4)
    assert bundle.config.decoding == "viterbi"  # the default
    viterbi = Predictor(bundle).predict(sentences)
    argmax = Predictor(bundle, decoding="argmax").predict(sentences)
    for v, a in zip(viterbi, argmax):
        assert not iob2_errors(v.tags)
        assert np.array_equal(v.word_probs, a.word_probs)
        assert v.tags == bundle.schema.decode(viterbi_iob2(v.word_probs, bundle.schema.tags))
        assert a.tags == bundle.schema.decode_valid(a.word_probs.argmax(axis=1))
    configured = dataclasses.replace(bundle, config=dataclasses.replace(bundle.config,
                                                                        decoding="argmax"))
    assert Predictor(configured).decoding == "argmax"
    with pytest.raises(ConfigError, match="decoding"):
        Predictor(bundle, decoding="beam")
