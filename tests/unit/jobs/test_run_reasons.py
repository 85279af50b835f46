"""Run reasons say what triggered a run and why it trained the way it did, without
contradicting each other: a retrain queued because dev labels or translations arrived
used to read "Why full: no new or corrected labels since the active model v1" next to
"new labels arrived"; now the plan names what changed."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from storekit import make_project, make_sentences, tiny_encoder

from concner.config import config_from_dict, load_config
from concner.jobs.context import JobContext
from concner.jobs.incremental import ActiveModel, data_changes, plan_retrain
from concner.jobs.registry import ModelRegistry
from concner.jobs.retrain import execute_retrain, maybe_request_retrain
from concner.ui.views import run_reason_text, runs_frame

torch.set_num_threads(1)
LABELLED = {i: 100 + i for i in range(1, 21)}
BEFORE = {"source": 20, "translated": 20, "target": 0, "dev_by_lang": {"es": 50},
          "unlabelled": 0}


def _active(config, counts=BEFORE) -> ActiveModel:
    return ActiveModel(7, 1, LABELLED, config=config.to_dict(), label_counts=counts)


def test_a_full_retrain_without_new_labels_says_what_changed_instead():
    config = config_from_dict({}, env={})
    now = {**BEFORE, "translated": 2000, "dev_by_lang": {"es": 50, "de": 200},
           "unlabelled": 4000}
    plan = plan_retrain(LABELLED, _active(config), config, label_counts=now)
    assert plan.kind == "full"
    assert plan.reason == (
        "no labelled training sentence is new or corrected since the active model v1, but "
        "1,980 translations more (20 to 2,000); gold dev sentences de 0 to 200; unlabelled "
        "target sentences 0 to 4,000: an update trains on new labels only, so a full retrain "
        "takes these in")


def test_a_full_retrain_with_nothing_changed_says_it_repeats_the_training():
    config = config_from_dict({}, env={})
    plan = plan_retrain(LABELLED, _active(config), config, label_counts=dict(BEFORE))
    assert plan.kind == "full" and plan.reason.endswith(
        "translations, dev and unlabelled sentences are as they were: a full retrain repeats "
        "its training")
    assert data_changes(None, BEFORE) == [] and data_changes(BEFORE, None) == []


def test_the_trigger_names_what_counts_as_new_labels_and_a_forced_full_retrain():
    run = SimpleNamespace(kind="retrain", reason="new_labels", force_full=False)
    text = run_reason_text(run)
    assert text.startswith("automatic: enough new label versions arrived on training sentences")
    assert "a dev set is scored, not trained on" in text  # what does not count, in words
    forced = SimpleNamespace(kind="retrain", reason="on_demand", force_full=True)
    assert run_reason_text(forced) == "asked for, as a full retrain"


def test_new_dev_labels_alone_trigger_no_retrain_and_a_retrain_asked_for_says_why_full(
        tmp_path, monkeypatch):
    from appkit import no_exception, open_page, use_store

    from concner.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    make_project(store, "p", tiny_encoder(tmp_path), n_source=12, n_dev=6, n_pool=6)
    config = load_config(env={})
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), config, "worker")
    first, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", first) == "succeeded"
    # the dev set grows: 5 new label versions, none on a training sentence
    store.import_sentences("p", make_sentences("dev-more-", 5, "de", seed=9), role="target",
                           split="dev")
    assert maybe_request_retrain(store, "p", 5) is None  # scored (dev_refresh), not trained on
    second, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", second) == "succeeded"
    run = store.get_run(second)
    assert run.update_kind == "full"
    assert "gold dev sentences de 6 to 11" in run.update_reason
    assert not run.update_reason.startswith("no new or corrected labels")
    row = runs_frame([run]).iloc[0]
    assert row["why asked"] == "asked for"
    assert "an update trains on new labels only" in row["why full or incremental"]
    # the Training page's run panel: what triggered the run, then why it was full
    use_store(monkeypatch, tmp_path)
    at = open_page("training", project="p")
    no_exception(at)
    captions = [c.value for c in at.caption]
    assert "Why asked: asked for" in captions
    assert any(c.startswith("Why full: no labelled training sentence is new or corrected "
                            "since the active model v1, but gold dev sentences de 6 to 11")
               for c in captions)
