"""Overview page: create a project through the form, see health lines and counts."""

from __future__ import annotations

import pytest
from appkit import app_env, markdown_text, no_exception, open_page


@pytest.fixture
def store(monkeypatch, tmp_path):
    from concner.store import Store

    return Store(app_env(monkeypatch, tmp_path))


def test_create_project_and_see_it(store):
    at = open_page()
    no_exception(at)
    assert not store.list_projects()
    at.text_input[0].input("demo")
    at.text_input[1].input("en")
    at.text_input[2].input("sw, ar")
    at.text_input[3].input("PER, ORG, LOC")
    at.text_input[4].input("/nonexistent/encoder")
    at.button[0].click()
    at.run()
    no_exception(at)
    project = store.get_project("demo")
    assert project.target_langs == ["sw", "ar"]
    assert project.label_schema["entity_types"] == ["PER", "ORG", "LOC"]
    assert at.session_state["concner_project"] == "demo"
    # the confirmation survives the rerun that shows the new project
    assert [s.value for s in at.success] == ["Project 'demo' created."]
    assert any(m.label == "pool" and m.value == "0" for m in at.metric)
    text = markdown_text(at)
    assert "**Store**" in text and "**Queue worker**" in text and "**Argilla**" in text
    assert "no worker has ever started" in text


def test_invalid_project_shows_error_and_creates_nothing(store):
    at = open_page()
    at.text_input[0].input("bad")
    at.text_input[1].input("en")
    at.text_input[2].input("en")  # source language listed as a target
    at.button[0].click()
    at.run()
    no_exception(at)
    assert any("also listed as a target" in e.value for e in at.error)
    assert not store.list_projects()


def test_readiness_checklist_and_the_automatic_retraining_switch(store):
    from storekit import make_sentences

    store.create_project("demo", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    store.import_sentences("demo", make_sentences("src", 5, "en", seed=1), role="source",
                           split="train")
    at = open_page(project="demo")
    no_exception(at)
    text = markdown_text(at)
    assert "⬜ **Labelled source sentences**: 5 en (at least 100 needed" in text
    assert "⬜ **Target dev set**" in text and 'tab "Gold target dev data"' in text
    assert "⬜ **Text in de**: 0 de sentences outside dev" in text
    (switch,) = [t for t in at.toggle if t.label == "Automatic retraining"]
    assert switch.value is True
    assert any("waits until the project is ready" in i.value for i in at.info)
    switch.set_value(False).run()
    no_exception(at)
    assert store.get_project("demo").auto_retrain is False
    assert any("Automatic retraining is off" in i.value for i in at.info)
    at.run()  # a rerun keeps the stored state
    (switch,) = [t for t in at.toggle if t.label == "Automatic retraining"]
    assert switch.value is False and store.get_project("demo").auto_retrain is False


def test_model_versions_show_their_dev_set_and_can_be_evaluated_again(tmp_path, monkeypatch):
    from appkit import trained_store, use_store
    from storekit import make_sentences

    from concner.jobs import queue as tasks

    store = trained_store(tmp_path, targets=("de",))
    use_store(monkeypatch, tmp_path)
    queued = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: queued.append((task.name, *args)))
    at = open_page(project="demo")
    no_exception(at)
    (table,) = [d.value for d in at.dataframe if "scored on" in d.value.columns]
    assert list(table["version"]) == ["v1"] and list(table["active"]) == ["active"]
    assert table["scored on"][0] == "current dev set (8 de)"

    store.import_sentences("demo", make_sentences("new-dev-", 3, "de", seed=40), role="target",
                           split="dev")
    at.run()
    (table,) = [d.value for d in at.dataframe if "scored on" in d.value.columns]
    assert table["scored on"][0] == "older dev set (8 de; now 11 de)"
    assert any("not scored on the current dev set" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Evaluate every version").click()
    at.run()
    no_exception(at)
    (run,) = store.runs("demo", kind="evaluate")
    assert run.model_version_id is None and run.status == "queued"
    assert queued == [("evaluate", "demo", run.id, None)]
    assert any(f"queued as run {run.id}" in s.value for s in at.success)
    next(b for b in at.button
         if b.label == "Evaluate this version on the current dev sets").click()
    at.run()
    (one,) = [r for r in store.runs("demo", kind="evaluate") if r.id != run.id]
    assert one.model_version_id == store.active_model_version("demo").id
