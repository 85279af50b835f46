"""Data page, Translate tab: every backend can be picked, with the fields it needs
(:mod:`concner.ui.translate`, checked without Streamlit here), and the button queues a
``translate`` run; with the queue in immediate mode (the job runs in this process) the
translations of the labelled source sentences land in the store and the run panel shows
the finished run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from appkit import app_env, no_exception, open_page
from storekit import make_sentences
from translation_support import require_freedict, write_freedict

from concner.config import config_from_dict, load_config
from concner.errors import ConfigError
from concner.jobs import queue as tasks
from concner.jobs.context import JobContext
from concner.jobs.registry import ModelRegistry
from concner.ui.translate import backends, request_options

N = 6


@pytest.fixture
def store(monkeypatch, tmp_path):
    from concner.store import Store

    store = Store(app_env(monkeypatch, tmp_path))
    store.create_project("demo", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="/nonexistent")
    store.import_sentences("demo", make_sentences("s", N, "en", seed=1), role="source",
                           split="train")
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                     "app-test")
    with tasks.running_here(ctx):
        yield store
    store.close()


def test_translate_button_runs_the_job_and_imports_translations(store):
    require_freedict("eng-deu")
    at = open_page("data", project="demo")
    no_exception(at)
    tab = at.tabs[4]
    backend = tab.selectbox[0]
    assert any(o.startswith("dictionary (FreeDict") for o in backend.options)
    backend.set_value("dictionary")  # the value behind the "dictionary (FreeDict: ...)" label
    at.run()
    no_exception(at)
    next(b for b in at.tabs[4].button if b.label == "Translate the source sentences").click()
    at.run()
    no_exception(at)
    (run,) = store.runs("demo", kind="translate")
    assert run.status == "succeeded", run.error
    assert run.config["backend"] == "dictionary" and run.config["target_lang"] == "de"
    translations = store.sentences("demo", role="translation", lang="de")
    assert len(translations) == N
    assert store.counts("demo")["translation_links"] == {"ok": N}
    assert any(f"Translation into de queued as run {run.id}" in s.value for s in at.success)


# -- the form's logic, without Streamlit -------------------------------------------------
def config_with(dictionary_dir: Path):
    return config_from_dict({"translation": {"dictionary_dir": str(dictionary_dir)}}, env={})


def test_every_backend_is_offered_and_says_what_it_offers_or_needs(tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    found = backends(config_with(empty))
    assert list(found) == ["apertium", "dictionary", "hf", "file"]
    assert found["hf"].usable and found["file"].usable
    assert "no FreeDict dictionaries in" in found["dictionary"].detail
    assert "apt-get install dict-freedict-" in found["dictionary"].detail
    assert found["apertium"].usable == (shutil.which("apertium") is not None)
    if not found["apertium"].usable:
        assert "apt-get install apertium" in found["apertium"].detail
    mine = write_freedict(tmp_path / "dictd", "eng-swa", [("city", "city\nmji\n")])
    assert backends(config_with(mine))["dictionary"].detail == "FreeDict: eng-swa"


def options(backend: str, tmp_path: Path, target: str = "de", **values):
    return request_options(backend, source_lang="en", target_lang=target,
                           config=config_with(tmp_path / "dictd"), **values)


@pytest.mark.parametrize("backend, values, message", [
    ("hf", {}, "Model: enter the folder of a saved seq2seq model"),
    ("hf", {"model": "  "}, "Model: enter the folder"),
    ("hf", {"model": "./no-such-model"}, "model folder ./no-such-model does not exist"),
    ("hf", {"model": "{tmp}"}, "is not a model folder (no config.json in it)"),
    ("file", {}, "Translations file: enter the path on the server"),
    ("file", {"translations": "missing.jsonl"},
     "translations file missing.jsonl does not exist; give the path"),
    ("dictionary", {}, ("has no freedict-eng-deu dictionary; install it with apt-get "
                        "install dict-freedict-eng-deu")),
    ("dictionary", {"directory": "{tmp}/nowhere"}, "nowhere does not exist; give the folder"),
    ("dictionary", {"directory": "{tmp}/has-deu", "share": 1.5},
     "dictionary share must be in [0, 1]"),
])
def test_form_values_are_checked_with_what_to_fix(tmp_path, backend, values, message):
    (tmp_path / "dictd").mkdir()
    write_freedict(tmp_path / "has-deu", "eng-deu", [("city", "city\nStadt\n")])
    values = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v
              for k, v in values.items()}
    with pytest.raises(ConfigError) as err:
        options(backend, tmp_path, **values)
    assert message in str(err.value)


def test_good_form_values_become_the_runs_options(tmp_path, monkeypatch):
    write_freedict(tmp_path / "dictd", "eng-deu", [("city", "city\nStadt\n")])
    config = config_with(tmp_path / "dictd").translation
    assert options("dictionary", tmp_path) == {
        "directory": str((tmp_path / "dictd").resolve()), "share": config.dictionary_share,
        "seed": config.dictionary_seed}
    assert options("dictionary", tmp_path, share=0.5, seed=3)["share"] == 0.5
    model = tmp_path / "opus-mt-en-de"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert options("hf", tmp_path, model="opus-mt-en-de") == {"model": str(model.resolve())}
    assert options("hf", tmp_path, model="Helsinki-NLP/opus-mt-en-de") == {
        "model": "Helsinki-NLP/opus-mt-en-de"}  # a hub id is left to the worker
    (tmp_path / "mine.jsonl").write_text("{}\n")
    assert options("file", tmp_path, translations=" mine.jsonl ") == {
        "translations": str((tmp_path / "mine.jsonl").resolve())}


def test_apertium_pair_defaults_from_the_languages_and_must_be_installed(tmp_path,
                                                                         monkeypatch):
    from concner.translation import apertium

    monkeypatch.setattr(apertium, "installed_pairs", lambda: ["eng-spa", "spa-eng"])
    assert options("apertium", tmp_path, target="es") == {"pair": "eng-spa"}
    with pytest.raises(ConfigError, match="Apertium pair: eng-deu is not installed here "
                                          r"\(there are: eng-spa, spa-eng\); install it with "
                                          "apt-get install apertium-eng-deu"):
        options("apertium", tmp_path, target="de")


# -- the page ----------------------------------------------------------------------------
def pick(at, backend: str):
    tab = at.tabs[4]
    tab.selectbox[0].set_value(backend)
    at.run()
    no_exception(at)
    return at.tabs[4]


def click_translate(at):
    next(b for b in at.tabs[4].button if b.label == "Translate the source sentences").click()
    at.run()
    no_exception(at)


def test_file_backend_from_the_page_queues_a_run_that_imports_the_file(store, tmp_path):
    sources = store.sentences("demo", role="source", split="train")
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps({"source_id": s.id, "tokens": s.tokens,
                                        "ner_tags": s.tags}) + "\n" for s in sources))
    at = open_page("data", project="demo")
    tab = pick(at, "file")
    tab.text_input(key="tr-file").set_value(str(mine))
    at.run()
    click_translate(at)
    (run,) = store.runs("demo", kind="translate")
    assert run.status == "succeeded", run.error
    assert run.config["options"] == {"translations": str(mine.resolve())}
    assert store.counts("demo")["translation_links"] == {"ok": N}


def test_hf_backend_without_a_model_says_what_to_enter_and_queues_nothing(store):
    at = open_page("data", project="demo")
    pick(at, "hf")
    click_translate(at)
    assert any("Model: enter the folder of a saved seq2seq model" in e.value for e in at.error)
    assert store.runs("demo", kind="translate") == []
