"""One translator factory (concner.translation.requests) for ``concner translate``, the
``translate`` job and the app: the same request makes the same translator."""

import argparse

import pytest

from concner.commands.translate import build_translator
from concner.config import Config
from concner.errors import ConfigError
from concner.translation.requests import SHARE, check_request, make_translator


def cli_args(**given) -> argparse.Namespace:
    base = {"backend": None, "target": None, "lang": None, "pair": None, "model": None,
            "translations": None, "share": None, "seed": None, "cache": None, "no_cache": True}
    return argparse.Namespace(**{**base, **given})


def test_the_cli_and_the_job_make_the_same_dictionary_translator():
    config = Config()
    from_cli, targets = build_translator(cli_args(backend="dictionary", target="de",
                                                  share=0.5, seed=3), config)
    from_job = make_translator(config, "dictionary", "en", "de", {"share": 0.5, "seed": 3})
    assert targets == ["de"] and type(from_cli) is type(from_job)
    assert (from_cli.share, from_cli.seed) == (from_job.share, from_job.seed) == (0.5, 3)
    assert from_cli.directory == from_job.directory


def test_the_share_range_is_the_settings_range_in_every_entry_point():
    assert SHARE.allowed() == "in [0, 1]"
    with pytest.raises(ConfigError, match=r"^--share must be in \[0, 1\]$"):
        build_translator(cli_args(backend="dictionary", target="de", share=1.5), Config())
    with pytest.raises(ConfigError, match=r"dictionary share must be in \[0, 1\], got 1.5"):
        check_request("dictionary", "en", "de", {"share": 1.5})
