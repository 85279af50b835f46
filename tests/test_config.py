"""Configuration: TOML, environment overrides, validation with the key named."""

import pytest

from concner.config import Config, config_from_dict, load_config
from concner.errors import ConfigError


def test_defaults_and_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[training]\nepochs = 3\n[loss]\nlambda_tcl = 0.25\n[data]\ntarget_langs = ["es", "de"]\n')
    cfg = load_config(p, env={})
    assert cfg.training.epochs == 3 and cfg.loss.lambda_tcl == 0.25
    assert cfg.data.target_langs == ("es", "de")
    assert cfg.loss.lambda_lcl == Config().loss.lambda_lcl


def test_env_overrides_win():
    cfg = config_from_dict({"training": {"epochs": 3}},
                           env={"CONCNER_TRAINING__EPOCHS": "7", "CONCNER_LOSS__KD": "true"})
    assert cfg.training.epochs == 7 and cfg.loss.kd is True


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"training": {"epochs": "many"}}, "training.epochs"),
        ({"training": {"learning_rate": 5}}, "training.learning_rate"),
        ({"loss": {"kd_loss": "l1"}}, "loss.kd_loss"),
        ({"loss": {"temperature_tcl": 0}}, "loss.temperature_"),
        ({"loss": {"lamda_tcl": 1}}, "unknown key(s) in [loss]: lamda_tcl"),
        ({"trainig": {}}, "unknown section"),
        ({"model": {"dropout": 1.5}}, "model.dropout"),
        ({"loss": {"kd": "maybe"}}, "loss.kd must be true or false"),
        ({"training": {"kd_max_sentences": -1}}, "training.kd_max_sentences must be >= 0"),
        ({"active": {"diversity_order_limit": -5}}, "active.diversity_order_limit must be >= 0"),
    ],
)
def test_validation_names_the_key(data, needle):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, env={})
    assert needle in str(err.value)


def test_missing_and_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[training\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
