"""Tiny-model training tests of the issue-19 variants, each a flag over the one training
function: ``loss.lcl_on`` (a), ``loss.tcl_level`` (b) and extra distillation teachers (c).
Each flag must change what is trained, and its default must train exactly as before."""

from __future__ import annotations

import dataclasses

import pytest
import test_training
import torch
from test_training import make_config, weights

from concner.errors import ConfigError
from concner.method.training import TrainData, train

torch.set_num_threads(1)

#: test_training's fixtures (tiny encoder, 20 synthetic sentences, reversed translations)
encoder_dir, source, translations = (test_training.encoder_dir, test_training.source,
                                     test_training.translations)


def with_loss(config, **loss):
    return dataclasses.replace(config, loss=dataclasses.replace(config.loss, **loss))


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return all(torch.equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------- (a) LCL on logits
def test_lcl_on_logits_trains_the_classifier_not_the_projection_head(encoder_dir, source,
                                                                    translations):
    config = make_config(encoder_dir, full=True, epochs=2)
    data = TrainData(source, translations)
    default = train(config, data)
    explicit = train(with_loss(config, lcl_on="projection"), data)
    assert same_weights(default.bundle, explicit.bundle)  # the default is the old behaviour
    on_logits = train(with_loss(config, lcl_on="logits"), data)
    assert set(on_logits.history[0]["losses"]) == {"ce", "lcl", "tcl"}
    assert on_logits.history[0]["losses"]["lcl"] != default.history[0]["losses"]["lcl"]
    # the projection head is unused on logits: it keeps its initial weights
    init = make_config(encoder_dir, full=True, epochs=0)
    untrained = train(init, TrainData(source, translations)).bundle
    before, after = weights(untrained), weights(on_logits.bundle)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("projection."))
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])


def test_variant_settings_are_validated(encoder_dir):
    from concner.config import config_from_dict

    with pytest.raises(ConfigError, match="loss.lcl_on"):
        config_from_dict({"loss": {"lcl_on": "hidden"}}, env={})
    with pytest.raises(ConfigError, match="loss.temperature_"):
        config_from_dict({"loss": {"temperature_lcl_logits": 0.0}}, env={})


# ---------------------------------------------------------------- (b) entity-level TCL
def test_stage1_batch_entity_index_marks_aligned_entities(source, translations):
    from tiny import make_tiny_tokenizer

    from concner.labels import LabelSchema
    from concner.method.batches import Stage1Batches, align_entities
    from concner.method.encoding import Collator, encode_sentences

    tok, schema = make_tiny_tokenizer(), LabelSchema(["PER", "ORG", "LOC"])
    src, _ = encode_sentences(tok, source[:2], schema, 64)
    tr, _ = encode_sentences(tok, translations[:2], schema, 64)
    aligned = [align_entities(source[0].tags, translations[0].tags), None]  # pair 1 skipped
    batches = Stage1Batches(src, tr, [(0, 0), (1, 1)], batch_size=8, seed=0,
                            collate=Collator(tok.pad_token_id), device=torch.device("cpu"),
                            entity_pairs=aligned)
    batch = batches.make([0, 1])
    n = len(aligned[0])  # source 0 "John Smith lives in Paris": PER, LOC
    assert batch["tcl_entity_src"].tolist() == [2 * k for k in range(n)]
    assert batch["tcl_entity_tgt"].tolist() == [2 * k + 1 for k in range(n)]
    index = batch["entity_index"]
    assert index.shape == batch["input_ids"].shape
    assert set(index[1].tolist()) == set(index[3].tolist()) == {-1}  # the skipped pair
    for k, ((s0, s1), (t0, t1)) in enumerate(aligned[0]):
        src_pos = (index[0] == 2 * k).nonzero().flatten().tolist()
        tgt_pos = (index[2] == 2 * k + 1).nonzero().flatten().tolist()
        assert [src[0].word_ids[p] for p in src_pos] == list(range(s0, s1))
        assert [tr[0].word_ids[p] for p in tgt_pos] == list(range(t0, t1))


def test_entity_level_tcl_trains_another_model_and_counts_skipped_pairs(
        encoder_dir, source, translations):
    config = make_config(encoder_dir, full=True, epochs=2)
    broken = translations[0].with_tags(["O"] * len(translations[0].tokens))  # entities lost
    data = TrainData(source, [broken] + translations[1:])
    default = train(config, data)
    explicit = train(with_loss(config, tcl_level="sentence"), data)
    assert same_weights(default.bundle, explicit.bundle)  # the default is the old behaviour
    assert "tcl_entity_alignment" not in default.history[0]
    entity = train(with_loss(config, tcl_level="entity"), data)
    assert set(entity.history[0]["losses"]) == {"ce", "lcl", "tcl"}
    assert entity.history[0]["losses"]["tcl"] != default.history[0]["losses"]["tcl"]
    assert not same_weights(default.bundle, entity.bundle)
    n_entities = sum(t.startswith("B-") for s in source[1:] for t in s.tags)
    assert entity.history[0]["tcl_entity_alignment"] == {
        "pairs_aligned": 19, "pairs_without_entities": 0, "pairs_skipped": 1,
        "entities": n_entities}


# ---------------------------------------------------------------- (c) several teachers
@pytest.fixture(scope="module")
def teachers(encoder_dir, source, translations):
    """Two stage-1 models: source only, and source + translation (another seed)."""
    only = train(make_config(encoder_dir, epochs=2), TrainData(source)).bundle
    full = train(make_config(encoder_dir, full=True, epochs=2, seed=5),
                 TrainData(source, translations)).bundle
    return only, full


def _kd_config(encoder_dir):
    from concner.config import config_from_dict

    return config_from_dict({"model": {"encoder": encoder_dir},
                             "loss": {"kd": True, "lambda_src": 0.0, "kd_temperature": 2.0},
                             "training": {"epochs": 0, "kd_epochs": 1, "batch_size": 8,
                                          "learning_rate": 3e-3}}, env={})


def test_extra_teacher_averages_soft_labels(encoder_dir, translations, teachers):
    from concner.labels import LabelSchema

    only, full = teachers
    config = _kd_config(encoder_dir)
    data = TrainData([], unlabelled_target=[t.with_tags(None) for t in translations])
    alone = train(config, data, init=full)
    assert same_weights(alone.bundle, train(config, data, init=full, extra_teachers=[]).bundle)
    averaged = train(config, data, init=full, extra_teachers=[only])
    assert [h["stage"] for h in averaged.history] == ["kd"]
    assert averaged.history[0]["losses"]["kd"] != alone.history[0]["losses"]["kd"]
    assert not same_weights(alone.bundle, averaged.bundle)
    # the same model as extra teacher: the mean distribution is its own (up to rounding)
    twice = train(config, data, init=full, extra_teachers=[full])
    assert twice.history[0]["losses"]["kd"] == pytest.approx(alone.history[0]["losses"]["kd"],
                                                             rel=1e-4)
    assert same_weights(only, teachers[0])  # the extra teacher is not modified
    other = dataclasses.replace(only, schema=LabelSchema(["PER"]))
    with pytest.raises(ConfigError, match="extra teacher 1"):
        train(config, data, init=full, extra_teachers=[other])
