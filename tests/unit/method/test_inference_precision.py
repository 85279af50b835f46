"""Prediction precision (``model.inference_precision``) and the CPU fast paths: prepacked
fp32/bf16 linear layers, int8 linear layers with per-row activation scales, token budgets."""

from __future__ import annotations

import dataclasses
import json
import logging
import random

import numpy as np
import pytest
import torch
from tiny import make_tiny_bundle

from concner.config import ModelConfig, config_from_dict
from concner.errors import ConfigError
from concner.labels import iob2_errors, spans_to_tags
from concner.method import precision as precision_mod
from concner.method.inference import Predictor, plan_batches
from concner.method.model import CONCNER_CONFIG_FILE, NerBundle
from concner.method.precision import (
    Int8Linear,
    PackedLinear,
    check_precision,
    int8_copy,
    onednn_linear_works,
    packed_copy,
)
from concner.sentence import Sentence

torch.set_num_threads(1)
PRECISIONS = ["fp32", "bf16", "int8"]
needs_onednn = pytest.mark.skipif(not onednn_linear_works(torch.float32),
                                  reason="this torch build has no oneDNN prepacked linear")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Tiny model with short windows (long sentences are windowed) and a sharpened
    classifier, so that its tags are confident enough to compare across precisions."""
    config = ModelConfig(max_length=16, window_stride=4)
    b = make_tiny_bundle(tmp_path_factory.mktemp("tiny"), config=config, seed=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        b.model.classifier.weight.copy_(torch.randn(b.model.classifier.weight.shape,
                                                    generator=gen) * 3.0)
    b.model.eval()
    return b


def _corpus(n: int = 40, seed: int = 0) -> list[Sentence]:
    rng = random.Random(seed)
    vocab = ["John", "lives", "in", "Paris", "the", "United", "Nations", "xyzzy", "Berlin", "!",
             "qwertyuiop", "7", "Google", "of", "Mary", "visited", "London"]
    return [Sentence.from_tokens(f"s{i}", "en", [rng.choice(vocab) for _ in
                                                 range(rng.choice([1, 2, 5, 9, 14, 30]))])
            for i in range(n)]


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b) if len(x))


# -- every precision: valid output, independent of the batch ----------------------------
@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_precision_returns_valid_spans(bundle, precision):
    sentences = _corpus()
    preds = Predictor(bundle, batch_size=8, device="cpu", precision=precision).predict(sentences)
    assert any(len(s) > 14 for s in sentences)  # windowed (max_length 16)
    assert sum(len(p.spans) for p in preds) > 10  # the check below has spans to check
    for p, s in zip(preds, sentences):
        assert p.sentence_id == s.id
        assert p.word_probs.shape == (len(s), len(bundle.schema))
        assert p.word_probs.dtype == np.float32
        assert np.allclose(p.word_probs.sum(axis=1), 1.0, atol=1e-4)
        assert not iob2_errors(p.tags)
        assert spans_to_tags(p.spans, s.offsets)[0] == p.tags
        for sp in p.spans:
            assert 0 <= sp.start < sp.end <= len(s.text) and 0.0 < sp.score <= 1.0


#: how far a word's probabilities may move with the batch: float32 rounding order; bf16
#: rounding (oneDNN picks kernels by batch shape, a bf16 result can round either way)
BATCH_TOLERANCE = {"fp32": 1e-5, "bf16": 2e-3, "int8": 1e-5}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_precision_is_independent_of_the_batch(bundle, precision):
    sentences = _corpus(seed=1)
    one = Predictor(bundle, batch_size=1, device="cpu", precision=precision).predict(sentences)
    # whole batches without a token cap, odd batches, and a tight token budget
    for kwargs in ({"batch_size": 64, "max_tokens": 0}, {"batch_size": 7},
                   {"batch_size": 32, "max_tokens": 40}):
        many = Predictor(bundle, device="cpu", precision=precision, **kwargs).predict(sentences)
        assert [p.tags for p in many] == [p.tags for p in one]
        diff = _max_diff([p.word_probs for p in many], [p.word_probs for p in one])
        assert diff < BATCH_TOLERANCE[precision]
    shuffled = list(reversed(sentences))
    again = {p.sentence_id: p for p in Predictor(bundle, batch_size=5, device="cpu",
                                                 precision=precision).predict(shuffled)}
    assert [again[p.sentence_id].tags for p in one] == [p.tags for p in one]


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_keeps_confident_tags_of_fp32(bundle, precision):
    sentences = _corpus(60, seed=2)
    fp32 = Predictor(bundle, device="cpu", precision="fp32").word_probs(sentences)
    low = Predictor(bundle, device="cpu", precision=precision).word_probs(sentences)
    # the reduced path really ran: probabilities move, but not far
    assert 1e-6 < _max_diff(fp32, low) < 0.1
    top2 = np.sort(np.log(np.concatenate(fp32)), axis=1)[:, -2:]
    confident = top2[:, 1] - top2[:, 0] > 0.2  # well separated in fp32 (log-prob margin)
    assert confident.sum() > 100
    same = np.concatenate(fp32).argmax(1) == np.concatenate(low).argmax(1)
    assert same[confident].all()


# -- the fast paths on CPU ------------------------------------------------------------
def test_int8_linear_quantises_each_row_on_its_own():
    gen = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(48, 24)
    x = torch.randn(9, 5, 48, generator=gen)
    x[0, 0] *= 100.0  # one outlier token
    q = Int8Linear(linear)
    with torch.inference_mode():
        got, want = q(x), linear(x)
        # a row's result does not depend on the other rows (the outlier) at all
        alone = torch.cat([q(x[i:i + 1, j:j + 1]) for i in range(9) for j in range(5)])
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.equal(alone.reshape(got.shape), got)
    rel = (got - want).norm(dim=-1) / want.norm(dim=-1)
    assert float(rel.max()) < 0.03
    assert q.weight.dtype == torch.int8


@needs_onednn
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 5e-2)])
def test_packed_linear_matches_linear_and_fused_gelu(dtype, tolerance):
    if not onednn_linear_works(dtype):
        pytest.skip(f"oneDNN has no {dtype} linear on this CPU (the predictor falls back)")
    gen = torch.Generator().manual_seed(1)
    linear = torch.nn.Linear(40, 72)
    x = torch.randn(3, 11, 40, generator=gen)
    with torch.inference_mode():
        want = linear(x)
        plain = PackedLinear(linear, dtype)(x)
        fused = PackedLinear(linear, dtype, gelu=True)(x)
    assert plain.dtype == dtype and plain.shape == want.shape
    assert torch.allclose(plain.float(), want, atol=tolerance, rtol=tolerance)
    assert torch.allclose(fused.float(), torch.nn.functional.gelu(want), atol=tolerance,
                          rtol=tolerance)


@needs_onednn
def test_fast_copies_share_weights_and_leave_the_model_alone(bundle):
    model = bundle.model
    for copy, kind in ((packed_copy(model), PackedLinear), (int8_copy(model), Int8Linear)):
        linears = [m for m in copy.encoder.modules() if isinstance(m, torch.nn.Linear)]
        assert not linears  # every encoder linear converted
        assert sum(isinstance(m, kind) for m in copy.encoder.modules()) >= 12
        embeddings = copy.encoder.embeddings.word_embeddings.weight
        assert embeddings.data_ptr() == model.encoder.embeddings.word_embeddings.weight.data_ptr()
        assert copy.classifier.weight is model.classifier.weight
    packed = packed_copy(model)
    layer = packed.encoder.encoder.layer[0]
    assert layer.intermediate.dense.gelu and isinstance(layer.intermediate.intermediate_act_fn,
                                                        torch.nn.Identity)
    assert not layer.output.dense.gelu
    original = model.encoder.encoder.layer[0]
    assert isinstance(original.intermediate.dense, torch.nn.Linear)
    assert not isinstance(original.intermediate.intermediate_act_fn, torch.nn.Identity)


@needs_onednn
def test_prepacked_fp32_matches_torch_default_path(bundle):
    sentences = _corpus(seed=3)
    packed = Predictor(bundle, device="cpu", precision="fp32")
    plain = Predictor(bundle, device="cpu", precision="fp32", prepack=False)
    network, autocast = packed._network()
    assert not autocast and any(isinstance(m, PackedLinear) for m in network.modules())
    assert plain._network()[0] is bundle.model
    a, b = packed.predict(sentences), plain.predict(sentences)
    assert [p.tags for p in a] == [p.tags for p in b]
    assert _max_diff([p.word_probs for p in a], [p.word_probs for p in b]) < 1e-5


def test_without_onednn_fp32_and_bf16_fall_back_to_torch(bundle, monkeypatch):
    monkeypatch.setattr(precision_mod, "onednn_linear_works", lambda dtype: False)
    sentences = _corpus(10, seed=4)
    fp32 = Predictor(bundle, device="cpu", precision="fp32")
    bf16 = Predictor(bundle, device="cpu", precision="bf16")
    assert fp32._network() == (bundle.model, False)
    assert bf16._network() == (bundle.model, True)  # autocast on the model itself
    ref = Predictor(bundle, device="cpu", precision="fp32", prepack=False).word_probs(sentences)
    assert _max_diff(fp32.word_probs(sentences), ref) == 0.0
    assert 0.0 < _max_diff(bf16.word_probs(sentences), ref) < 0.1


@pytest.mark.parametrize("precision", PRECISIONS)
def test_copy_follows_weight_changes(bundle, precision):
    """A trainer evaluates with a predictor while the weights change: the converted copy
    must not go stale."""
    own = bundle.clone()
    sentences = _corpus(8, seed=5)
    predictor = Predictor(own, device="cpu", precision=precision)
    before = predictor.word_probs(sentences)
    with torch.no_grad():  # an optimizer step does this: in place
        own.model.encoder.encoder.layer[1].output.dense.weight.mul_(-3.0)
    after = predictor.word_probs(sentences)
    fresh = Predictor(own, device="cpu", precision=precision).word_probs(sentences)
    assert _max_diff(before, after) > 1e-3
    assert _max_diff(after, fresh) == 0.0


def test_int8_mc_dropout_and_training_mode(bundle):
    own = bundle.clone()
    own.model.dropout.p = 0.5
    sentences = _corpus(6, seed=6)
    predictor = Predictor(own, device="cpu", precision="int8")
    own.model.train()
    plain = predictor.word_probs(sentences)
    assert own.model.training  # restored
    assert _max_diff(plain, predictor.word_probs(sentences)) == 0.0  # dropout was off
    torch.manual_seed(0)
    assert _max_diff(plain, predictor.word_probs(sentences, mc_dropout=True)) > 1e-3
    emb = predictor.sentence_embeddings(sentences)
    assert emb.shape == (6, 32) and np.isfinite(emb).all()


def test_plan_batches_respects_sizes_and_token_budget():
    lengths = [50, 30, 12, 12, 10, 9, 9, 5, 5, 5, 3]
    batches = plan_batches(lengths, 4, 40)
    assert [list(b) for b in batches] == [[0], [1], [2, 3, 4], [5, 6, 7, 8], [9, 10]]
    for b in batches:
        assert len(b) <= 4 and (len(b) == 1 or lengths[b[0]] * len(b) <= 40)
    assert [list(b) for b in plan_batches(lengths, 4, 0)] == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                              [8, 9, 10]]
    assert plan_batches([], 4, 40) == []


# -- configuration and devices --------------------------------------------------------
def test_config_key_is_validated_and_documented_default():
    assert ModelConfig().inference_precision == "fp32"
    for value in PRECISIONS:
        cfg = config_from_dict({"model": {"inference_precision": value}}, env={})
        assert cfg.model.inference_precision == value
    env = {"CONCNER_MODEL__INFERENCE_PRECISION": "int8"}
    assert config_from_dict({}, env=env).model.inference_precision == "int8"
    with pytest.raises(ConfigError, match=r"model\.inference_precision.*'fp16'"):
        config_from_dict({"model": {"inference_precision": "fp16"}}, env={})


def test_predictor_takes_the_model_setting_and_rejects_unknown(bundle, tmp_path):
    with pytest.raises(ConfigError, match=r"model\.inference_precision"):
        Predictor(bundle, device="cpu", precision="fp16")
    int8_bundle = bundle.clone()
    int8_bundle.config = dataclasses.replace(bundle.config, inference_precision="int8")
    assert Predictor(int8_bundle, device="cpu").precision == "int8"
    assert Predictor(int8_bundle, device="cpu", precision="fp32").precision == "fp32"
    # the setting is saved with the model; a folder written before it existed reads as fp32
    int8_bundle.save(tmp_path / "m")
    assert NerBundle.load(tmp_path / "m").config.inference_precision == "int8"
    meta_path = tmp_path / "m" / CONCNER_CONFIG_FILE
    meta = json.loads(meta_path.read_text())
    del meta["model"]["inference_precision"]
    meta_path.write_text(json.dumps(meta))
    assert NerBundle.load(tmp_path / "m").config.inference_precision == "fp32"


def test_int8_is_cpu_only():
    with pytest.raises(ConfigError, match="CPU only"):
        check_precision("int8", torch.device("cuda"))
    assert check_precision("int8", torch.device("cpu")) == "int8"


def test_int8_on_cuda_fails_clearly(bundle):
    # without a GPU: "no CUDA GPU"; with one: int8 is CPU only. Either way a ConfigError.
    message = "CPU only" if torch.cuda.is_available() else "no CUDA"
    with pytest.raises(ConfigError, match=message):
        Predictor(bundle, device="cuda", precision="int8")


def test_bf16_on_a_cpu_without_native_bf16_warns(bundle, monkeypatch, caplog):
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="concner.method.precision"):
        Predictor(bundle, device="cpu", precision="bf16")
    assert "no native bfloat16" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="concner.method.precision"):
        Predictor(bundle, device="cpu", precision="fp32")
    assert "bfloat16" not in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gpu_precisions_predict(bundle, precision):
    own = bundle.clone()
    sentences = _corpus(10, seed=7)
    preds = Predictor(own, device="cuda", precision=precision).predict(sentences)
    cpu = Predictor(bundle, device="cpu", precision="fp32").predict(sentences)
    assert all(not iob2_errors(p.tags) for p in preds)
    assert _max_diff([p.word_probs for p in preds], [p.word_probs for p in cpu]) < 0.1

