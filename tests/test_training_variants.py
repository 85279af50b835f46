"""Tiny-model training tests of the issue-19 variants, each a flag over the one training
function: ``loss.lcl_on`` (a), ``loss.tcl_level`` (b) and extra distillation teachers (c).
Each flag must change what is trained, and its default must train exactly as before."""

from __future__ import annotations

import dataclasses

import pytest
import test_training
import torch
from test_training import make_config, weights

from concner.training import TrainData, train

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
    from concner.errors import ConfigError

    with pytest.raises(ConfigError, match="loss.lcl_on"):
        config_from_dict({"loss": {"lcl_on": "hidden"}}, env={})
    with pytest.raises(ConfigError, match="loss.temperature_"):
        config_from_dict({"loss": {"temperature_lcl_logits": 0.0}}, env={})
