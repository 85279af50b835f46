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


def test_each_setting_is_declared_once_with_its_range_and_form_label():
    """validate()'s range checks, their wording and the Training form's fields all come from
    the settings' declarations (concner.settings.setting)."""
    from concner.config import TrainingConfig
    from concner.settings import Spec, setting_spec
    from concner.ui.training_form import FORM_FIELDS

    assert setting_spec(TrainingConfig, "learning_rate").allowed() == "in (0, 1)"
    assert Spec(ge=0, lt=1).allowed() == "in [0, 1)" and Spec(ge=1).allowed() == ">= 1"
    assert Spec(gt=0).allowed() == "> 0" and Spec(ge=1, le=59).allowed() == "in [1, 59]"
    assert Spec(choices=("kl", "mse")).allowed() == "one of kl, mse"
    assert setting_spec(TrainingConfig, "epochs").form == "epochs (stage 1)"
    assert [(s, n) for s, n, _ in FORM_FIELDS] == [
        ("loss", "use_translation"), ("loss", "lambda_lcl"), ("loss", "lambda_tcl"),
        ("loss", "temperature_lcl"), ("loss", "temperature_tcl"), ("loss", "kd"),
        ("training", "epochs"), ("training", "kd_epochs"), ("training", "batch_size"),
        ("training", "learning_rate"), ("training", "seed")]


@pytest.mark.parametrize(
    "data,message",
    [
        ({"training": {"kd_epochs": -1}}, "training.kd_epochs must be >= 0, got -1"),
        ({"loss": {"kd_temperature": 0}}, "loss.kd_temperature must be > 0, got 0.0"),
        ({"active": {"mc_passes": 0}}, "active.mc_passes must be >= 1, got 0"),
        ({"training": {"replay_size": -1}},
         "training.replay_size must be >= 0, got -1 (0 = no replay)"),
        ({"model": {"window_stride": 64}},
         "model.window_stride must be in [0, max_length/2), got 64 with max_length 128"),
        ({"services": {"supervisor_backoff_s": 60}},
         "services.supervisor_backoff_s must be > 0 and <= services.supervisor_backoff_max_s"),
    ],
)
def test_a_range_error_names_the_exact_key_the_range_and_the_value(data, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, env={})
    assert str(err.value) == message
