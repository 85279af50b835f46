"""Error hints name a control that exists where they are shown: every sub-command that reads
labelled files, given one with a stray I- tag, names only flags its own parser has; the app's
upload error names the Data page's checkbox (tests/unit/ui/test_app_data.py)."""

from __future__ import annotations

import argparse
import re

import pytest

from concner.cli import build_parser, main
from concner.errors import CLI_HINTS, DataFormatError
from concner.ui.uploads import APP_HINTS, REPAIR_LABEL

BAD = "Mary\tB-PER\nlives\tO\n\nin\tO\nLondon\tI-LOC\n"  # stray I- on line 5


def _subparser(path: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad-en.tsv"
    path.write_text(BAD, encoding="utf-8")
    return path


def _commands(tmp_path, bad_file, monkeypatch):
    """(parser path, argv) of every sub-command that reads labelled files from the user."""
    from concner.store import Store

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    Store(url).create_project("p", source_lang="en", target_langs=["de"],
                              entity_types=["PER", "ORG", "LOC"], encoder="enc")
    config = tmp_path / "train.toml"
    config.write_text(f'[paths]\ntrain = "{bad_file}"\nout = "{tmp_path / "out"}"\n'
                      '[loss]\nuse_translation = false\nkd = false\n', encoding="utf-8")
    (tmp_path / "tr.jsonl").write_text("", encoding="utf-8")
    return {
        "evaluate": (["evaluate"], ["evaluate", "--model", str(tmp_path / "none"),
                                    "--data", str(bad_file)]),
        "predict": (["predict"], ["predict", "--model", str(tmp_path / "none"), "--in",
                                  str(bad_file), "--format", "conll",
                                  "--out", str(tmp_path / "p.jsonl")]),
        "train": (["train"], ["train", "--config", str(config)]),
        "project import": (["project", "import"], ["project", "import", "p", str(bad_file),
                                                   "--role", "source", "--split", "train",
                                                   "--lang", "en"]),
        "translate": (["translate"], ["translate", "--backend", "file", "--translations",
                                      str(tmp_path / "tr.jsonl"), "--target", "de",
                                      "--in", str(bad_file), "--out", str(tmp_path / "t.tsv")]),
    }


@pytest.mark.parametrize("command", [
    "evaluate", "predict", "train", "project import",
    "translate",
])
def test_every_cli_hint_names_a_flag_of_its_own_sub_command(command, tmp_path, bad_file,
                                                            monkeypatch, capsys):
    path, argv = _commands(tmp_path, bad_file, monkeypatch)[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "bad-en.tsv:5:" in err and "invalid IOB2" in err  # the error we are after
    flags = _flags(err)
    assert flags, f"{command}: the hint names no control: {err}"
    missing = flags - _options(_subparser(path))
    assert not missing, f"`concner {command}` has no {sorted(missing)}: {err}"


def test_the_repair_flag_works_where_the_hint_names_it(tmp_path, bad_file, monkeypatch, capsys):
    # evaluate now has --repair-iob: the file reads, and it stops at the (missing) model
    code = main(["evaluate", "--model", str(tmp_path / "none"), "--data", str(bad_file),
                 "--repair-iob"])
    err = capsys.readouterr().err
    assert code == 2 and "IOB2" not in err


def test_hint_key_is_rendered_for_each_place():
    exc = DataFormatError("invalid IOB2: x", path="a.tsv", line=3, hint="repair_iob")
    assert str(exc) == f"a.tsv:3: invalid IOB2: x; {CLI_HINTS['repair_iob']}"
    assert f'"{REPAIR_LABEL}"' in exc.explain(APP_HINTS) and "--" not in exc.explain(APP_HINTS)
    assert "--" not in str(exc.for_controls({}))  # a place without the control names none
