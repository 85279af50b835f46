"""``concner project translate`` and ``concner project delete`` on a SQLite store: the
dictionary and file backends (hand-built FreeDict, a user's file), progress and projection
counts, Ctrl-C, clear errors before any run exists, and a delete that asks first."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from storekit import make_sentences
from translation_support import write_freedict

from concner.cli import main
from concner.store import Store
from concner.translation.dictionary import DictionaryTranslator

N_SOURCE = 12
ENTRIES = [("city", "city\nStadt\n"), ("company", "company\nFirma\n"),
           ("lives", "lives\nwohnt\n"), ("visited", "visited\nbesuchte\n"),
           ("works", "works\narbeitet\n")]


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Store:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    monkeypatch.setenv("CONCNER_SERVICES__CHECKPOINTS", str(tmp_path / "models"))
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    st = Store(url)
    st.create_project("p", source_lang="en", target_langs=["de", "nl"],
                      entity_types=["PER", "ORG", "LOC"], encoder="enc")
    st.import_sentences("p", make_sentences("src", N_SOURCE, "en", seed=1), role="source",
                        split="train")
    yield st
    st.close()


@pytest.fixture()
def dict_dir(tmp_path) -> Path:
    return write_freedict(tmp_path / "dictd", "eng-deu", ENTRIES)


def translate(*args: str) -> int:
    return main(["project", "translate", "p", "--no-progress", *args])


def test_dictionary_translates_prints_progress_and_counts_then_nothing_left(
        store, dict_dir, capsys):
    assert translate("--backend", "dictionary", "--target", "de",
                     "--dictionary-dir", str(dict_dir)) == 0
    out, err = capsys.readouterr()
    (run,) = store.runs("p", kind="translate")
    assert run.status == "succeeded" and run.worker_id == f"cli-{os.getpid()}"
    assert f"de: {N_SOURCE} labelled source sentences need a de translation" in err
    assert (f"de: run {run.id} translated {N_SOURCE} source sentences with dictionary" in out
            and f"projection ok {N_SOURCE}, repaired 0, failed 0; imported {N_SOURCE} "
                "translations" in out)
    translations = store.sentences("p", role="translation", lang="de")
    assert len(translations) == N_SOURCE
    assert not {w for w, _ in ENTRIES} & {t for s in translations for t in s.tokens}
    assert translate("--backend", "dictionary", "--target", "de",
                     "--dictionary-dir", str(dict_dir)) == 0
    assert "de: nothing to translate" in capsys.readouterr().out
    assert len(store.sentences("p", role="translation", lang="de")) == N_SOURCE


def test_every_target_by_default_and_a_missing_dictionary_is_named(store, dict_dir, capsys):
    """No --target: de, then nl; there is no eng-nld dictionary, so nl fails (de stays)."""
    assert translate("--backend", "dictionary", "--dictionary-dir", str(dict_dir)) == 2
    out, err = capsys.readouterr()
    assert "de: run" in out and f"imported {N_SOURCE}" in out
    assert "nl: translate run" in err and "no FreeDict dictionary eng-nld" in err
    assert "apt-get install dict-freedict-eng-nld" in err
    assert {r.status for r in store.runs("p", kind="translate")} == {"succeeded", "failed"}
    assert len(store.sentences("p", role="translation", lang="de")) == N_SOURCE
    assert store.sentences("p", role="translation", lang="nl") == []


def test_file_backend_counts_the_sources_the_file_leaves_out(store, tmp_path, capsys):
    half = store.sentences("p", role="source", split="train")[: N_SOURCE // 2]
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps({"source_id": s.id, "tokens": s.tokens,
                                        "ner_tags": s.tags}) + "\n" for s in half))
    assert translate("--backend", "file", "--target", "nl", "--translations", str(mine)) == 0
    out = capsys.readouterr().out
    assert (f"projection ok {len(half)}, repaired 0, failed {N_SOURCE - len(half)}; "
            f"imported {len(half)} translations") in out
    assert store.counts("p")["translation_links"] == {"ok": len(half),
                                                      "failed": N_SOURCE - len(half)}


def test_ctrl_c_cancels_the_run_and_imports_nothing(store, dict_dir, monkeypatch, capsys):
    real = DictionaryTranslator.translate

    def pressed_ctrl_c(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DictionaryTranslator, "translate", pressed_ctrl_c)
    handler = signal.getsignal(signal.SIGINT)
    assert translate("--backend", "dictionary", "--target", "de",
                     "--dictionary-dir", str(dict_dir)) == 130
    assert "cancelled (interrupted (Ctrl-C); nothing was imported)" in capsys.readouterr().err
    (run,) = store.runs("p", kind="translate")
    assert run.status == "cancelled"
    assert store.sentences("p", role="translation") == []
    assert store.counts("p")["translation_links"] == {}
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C is the default again


@pytest.mark.parametrize("args, message", [
    (["--backend", "file", "--target", "nl", "--translations", "nowhere.jsonl"],
     "translations file nowhere.jsonl does not exist; give the path of your JSONL or TSV"),
    (["--backend", "hf", "--target", "de", "--model", "./no-such-model"],
     "model folder ./no-such-model does not exist"),
    (["--backend", "hf", "--target", "de", "--model", "{tmp}"],
     "is not a model folder (no config.json in it)"),
    (["--backend", "hf", "--target", "de"], "the hf backend needs model="),
    (["--backend", "dictionary", "--target", "de", "--model", "x"],
     "--backend dictionary does not use --model; it takes --dictionary-dir, --seed, --share"),
    (["--backend", "dictionary", "--target", "fr"], "translates into de, nl, not 'fr'"),
    (["--backend", "dictionary", "--dictionary-dir", "no-such-dir"],
     "dictionary folder no-such-dir does not exist"),
    (["--backend", "file", "--translations", "x.jsonl"],
     "is for one target language, but this would translate into de, nl; pick one"),
    (["--backend", "apertium", "--pair", "eng-spa"], "pick one with --target"),
])
def test_bad_requests_fail_before_any_run(store, tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert translate(*args) == 2
    assert message in capsys.readouterr().err
    assert store.runs("p", kind="translate") == []


def test_unknown_project_and_backend(store, capsys):
    assert main(["project", "translate", "nope", "--backend", "dictionary"]) == 2
    assert "no project named 'nope'; known projects: p" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        translate("--backend", "babelfish")
    assert exit_.value.code == 2
    assert "invalid choice: 'babelfish'" in capsys.readouterr().err


# -- delete ------------------------------------------------------------------------------
def answer(monkeypatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


@pytest.fixture()
def checkpoints(store, tmp_path) -> Path:
    folder = tmp_path / "models" / f"p-{store.get_project('p').id}"
    (folder / "v1").mkdir(parents=True)
    return folder


def test_delete_asks_and_a_wrong_or_no_answer_deletes_nothing(store, checkpoints,
                                                              monkeypatch, capsys):
    for text in ("yes\n", ""):  # a wrong name; end of input
        answer(monkeypatch, text)
        assert main(["project", "delete", "p"]) == 1
        out, err = capsys.readouterr()
        assert f"will be deleted for good: {N_SOURCE} sentences" in out
        assert "Not deleted: the answer was not 'p' (pass --yes" in err
        assert store.get_project("p") and checkpoints.is_dir()
    answer(monkeypatch, "p\n")
    assert main(["project", "delete", "p"]) == 0
    out = capsys.readouterr().out
    assert f"deleted project 'p': {N_SOURCE} sentences, {N_SOURCE} label versions" in out
    assert f"checkpoint folder {checkpoints} removed" in out
    assert [p.name for p in store.list_projects()] == [] and not checkpoints.exists()


def test_delete_yes_does_not_ask(store, monkeypatch, capsys):
    answer(monkeypatch, "")  # would decline if asked
    assert main(["project", "delete", "p", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "will be deleted" not in out and "it had no checkpoint folder" in out
    assert store.list_projects() == []


def test_delete_unknown_project_and_a_queued_run(store, checkpoints, capsys):
    assert main(["project", "delete", "nope", "--yes"]) == 2
    assert "no project named 'nope'; known projects: p" in capsys.readouterr().err
    run, _ = store.request_run("p")
    assert main(["project", "delete", "p", "--yes"]) == 2
    assert f"queued or running runs ({run}); cancel them" in capsys.readouterr().err
    assert store.get_project("p") and checkpoints.is_dir()
