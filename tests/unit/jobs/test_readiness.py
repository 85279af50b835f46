"""The readiness rule (concner/jobs/readiness.py), the per-project automatic-retraining switch
and the worker's automatic trigger (concner/jobs/autoretrain.py, tasks.tick), and their CLI."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from storekit import env_store, make_sentences

from concner.cli import main
from concner.config import load_config
from concner.jobs import queue as tasks
from concner.jobs.context import JobContext
from concner.jobs.readiness import ProjectFacts, check, project_readiness
from concner.jobs.registry import ModelRegistry

N_SOURCE = 120  # above the default services.auto_retrain_min_source_labels (100)


def facts(**changes) -> ProjectFacts:
    """A complete project (ready), with ``changes``."""
    complete = ProjectFacts(name="p", source_lang="en", target_langs=("de", "sw"),
                            source_labels=150, target_text={"de": 10, "sw": 5},
                            translations={"de": 150}, dev={"de": 20}, uses_translation=True,
                            min_source_labels=100)
    return dataclasses.replace(complete, **changes)


def test_a_complete_project_is_ready():
    readiness = check(facts())
    assert readiness.ready and readiness.summary() == "ready"
    assert readiness.on_demand_warning() is None
    dev = next(r for r in readiness.requirements if r.key == "dev")
    assert "sw not evaluated" in dev.have  # ready, but says which language has no dev set


def test_an_empty_project_lists_every_missing_requirement_with_the_next_step():
    readiness = check(facts(source_labels=0, target_text={}, translations={}, dev={}))
    assert not readiness.ready
    assert [r.key for r in readiness.missing] == [
        "source_labels", "target_text:de", "target_text:sw", "translations", "dev"]
    by_key = {r.key: r for r in readiness.requirements}
    assert "Data page, tab \"Source labelled data\"" in by_key["source_labels"].todo
    assert by_key["source_labels"].cli.startswith("concner project import p FILE --role source")
    assert "--lang sw" in by_key["target_text:sw"].cli
    assert "concner project translate p" in by_key["translations"].cli
    assert "--split dev" in by_key["dev"].cli
    assert "Gold target dev data" in by_key["dev"].todo
    warning = readiness.on_demand_warning("cli")
    assert "runs anyway" in warning and "concner project import" in warning
    assert "Data page" not in warning  # the command line is told commands, not controls


def test_minimum_source_labels_is_a_threshold():
    assert not check(facts(source_labels=99)).ready
    assert check(facts(source_labels=100)).ready


def test_translations_are_not_needed_without_the_translation_loss():
    assert check(facts(translations={}, uses_translation=False)).ready
    assert not check(facts(translations={}, uses_translation=True)).ready


def test_a_running_translation_keeps_the_project_waiting():
    readiness = check(facts(translating={"sw": 7}))
    (missing,) = readiness.missing
    assert missing.key == "translations" and "run 7 into sw" in missing.have


def test_a_min_source_labels_setting_is_validated():
    from concner.errors import ConfigError

    assert load_config(env={}).services.auto_retrain_min_source_labels == 100
    with pytest.raises(ConfigError, match="auto_retrain_min_source_labels"):
        load_config(env={"CONCNER_SERVICES__AUTO_RETRAIN_MIN_SOURCE_LABELS": "0"})


# -- the automatic trigger --------------------------------------------------------------
@pytest.fixture()
def store(tmp_path, monkeypatch):
    st = env_store(tmp_path, monkeypatch)
    st.create_project("p", source_lang="en", target_langs=["de"],
                      entity_types=["PER", "ORG", "LOC"], encoder="enc")
    yield st
    st.close()


@pytest.fixture()
def ctx(store, tmp_path):
    queued: list[tuple[str, int]] = []
    context = JobContext(store, ModelRegistry(store, str(tmp_path / "models")),
                         load_config(env={}), "test",
                         enqueue_retrain=lambda project, run_id: queued.append((project, run_id)))
    context.queued = queued
    return context


def import_source(store):
    store.import_sentences("p", make_sentences("src", N_SOURCE, "en", seed=1), role="source",
                           split="train")


def import_the_rest(store):
    store.import_sentences("p", make_sentences(
        "tr-", N_SOURCE, "de", seed=2, meta_fn=lambda i: {"source_id": f"src{i}"}),
        role="translation", split="train")
    store.import_sentences("p", make_sentences("pool-", 10, "de", seed=3, labelled=False),
                           role="target", split="pool")
    store.import_sentences("p", make_sentences("dev-", 8, "de", seed=4), role="target",
                           split="dev")


def test_importing_only_the_source_queues_no_automatic_retrain(store, ctx, caplog):
    """The reported bug: a full retrain started the moment the English file was imported
    (and a second one right after), before target text, translations or a dev set."""
    import_source(store)
    with caplog.at_level(logging.INFO, logger="concner.jobs.autoretrain"):
        assert tasks.tick(ctx)["enqueued"] == 0
        assert tasks.tick(ctx)["enqueued"] == 0
    assert store.runs("p", kind="retrain") == [] and ctx.queued == []
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1  # said once, not on every tick
    assert "waits, not ready" in said[0] and "text in de: 0 de sentences" in said[0]
    assert "translations of the source" in said[0] and "target dev set" in said[0]


def test_a_ready_project_gets_one_automatic_retrain(store, ctx):
    import_source(store)
    import_the_rest(store)
    assert project_readiness(store, "p", ctx.config).ready
    assert tasks.tick(ctx)["enqueued"] == 1
    (run,) = store.runs("p", kind="retrain")
    assert run.reason == "new_labels" and ctx.queued == [("p", run.id)]
    assert tasks.tick(ctx)["enqueued"] == 0  # no second one while the first has not started
    assert len(store.runs("p", kind="retrain")) == 1


def test_the_switch_off_queues_nothing_and_says_why(store, ctx, caplog):
    import_source(store)
    import_the_rest(store)
    store.set_auto_retrain("p", False)
    with caplog.at_level(logging.INFO, logger="concner.jobs.autoretrain"):
        assert tasks.tick(ctx)["enqueued"] == 0
    assert store.runs("p", kind="retrain") == []
    assert any("automatic retraining of 'p' is off" in r.getMessage() for r in caplog.records)
    store.set_auto_retrain("p", True)
    assert tasks.tick(ctx)["enqueued"] == 1


def test_an_on_demand_retrain_runs_when_not_ready_and_warns(store, capsys, monkeypatch):
    import_source(store)
    monkeypatch.setattr(tasks, "enqueue", lambda *args: None)
    assert main(["retrain", "p"]) == 0
    out, err = capsys.readouterr()
    (run,) = store.runs("p", kind="retrain")
    assert f"run {run.id} queued" in out and run.reason == "on_demand"
    assert "warning: project 'p' is not ready" in err and "runs anyway" in err
    assert "concner project import p FILE --role target --split dev --lang de" in err


def test_cli_switch_and_checklist(store, capsys):
    import_source(store)
    assert main(["project", "auto-retrain", "p", "off"]) == 0
    assert store.get_project("p").auto_retrain is False
    out = capsys.readouterr().out
    assert "automatic retraining: off (retrain on demand only)" in out
    assert f"[x] Labelled source sentences: {N_SOURCE} en" in out
    assert "[ ] Target dev set" in out and "next: concner project import p FILE" in out
    assert main(["project", "auto-retrain", "p", "on"]) == 0
    assert store.get_project("p").auto_retrain is True
    assert "automatic retraining: on (waiting until the project is ready)" in \
        capsys.readouterr().out
    assert main(["project", "status", "p", "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["auto_retrain"] is True and info["readiness"]["ready"] is False


def test_every_control_the_checklist_names_exists_on_its_page():
    """The app's next steps name Data page tabs and a Training form field: they must be
    the labels those pages show (a renamed tab would leave the hint pointing at nothing)."""
    import re
    from pathlib import Path

    from concner.ui.training_form import FORM_FIELDS

    root = Path(__file__).resolve().parents[3]
    data_page = (root / "pages" / "data.py").read_text("utf-8")
    readiness = check(facts(source_labels=0, target_text={}, translations={}, dev={}))
    hints = " ".join(r.todo for r in readiness.requirements)
    tabs = re.findall(r'Data page, tab "([^"]+)"|tab "([^"]+)"', hints)
    named = {a or b for a, b in tabs}
    assert named == {"Source labelled data", "Unlabelled target text",
                     "Machine-translate the source", "Upload translations",
                     "Gold target dev data"}
    for tab in named:
        assert f'"{tab}"' in data_page, tab
    assert 'Training page, "use translations"' in hints
    assert any(label.startswith("use translations") for _, _, label in FORM_FIELDS)


def test_a_pool_corrected_completely_keeps_the_project_ready(store):
    import_source(store)
    import_the_rest(store)
    for sent in store.sentences("p", role="target", split="pool"):
        store.add_annotation("p", sent.id, ["O"] * len(sent.tokens), author="alice")
    readiness = project_readiness(store, "p", load_config(env={}))
    assert readiness.ready, readiness.summary()
