"""Data page, Translate tab: the button queues a ``translate`` run; with the queue in
immediate mode (the job runs in this process) the translations of the labelled source
sentences land in the store and the run panel shows the finished run."""

from __future__ import annotations

import pytest
from appkit import app_env, no_exception, open_page
from storekit import make_sentences
from translation_support import require_freedict

from concner import tasks
from concner.config import load_config
from concner.registry import ModelRegistry
from concner.runner import JobContext

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
    saved_ctx, saved_mode = tasks._resources.get("ctx"), tasks.huey.immediate
    tasks._resources["ctx"], tasks.huey.immediate = ctx, True
    yield store
    tasks.huey.immediate = saved_mode
    if saved_ctx is None:
        tasks._resources.pop("ctx", None)
    else:
        tasks._resources["ctx"] = saved_ctx
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
    assert any(f"Translation queued as run {run.id}" in s.value for s in at.success)
