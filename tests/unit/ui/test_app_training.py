"""The Training page's control: the run selector follows the run just asked for, and the
config editor has one precedence, stated on the page, with a conflict as an error."""

from __future__ import annotations

import pytest
from appkit import app_env, no_exception, open_page

from concner.errors import ConfigError
from concner.ui.training_form import PRECEDENCE, merge_form


@pytest.fixture
def store(monkeypatch, tmp_path):
    from storekit import make_project

    from concner.store import Store

    store = Store(app_env(monkeypatch, tmp_path))
    make_project(store, "demo", "an-encoder-never-loaded", n_source=4, n_dev=2, n_pool=2)
    for status in ("succeeded", "failed"):  # two finished runs: the selector has a choice
        run_id, _ = store.request_run("demo")
        assert store.acquire_retrain(run_id, "w")
        store.finish_run(run_id, status)
        store.release_retrain(run_id)
    return store


def test_a_form_field_set_again_in_the_toml_box_is_an_error_naming_the_winner():
    form = {("training", "epochs"): 6, ("loss", "lambda_lcl"): 0.2}
    with pytest.raises(ConfigError) as info:
        merge_form({"training": {"epochs": 3}}, form)
    text = str(info.value)
    assert "training.epochs is set twice" in text and "says 6" in text and "says 3" in text
    assert "The form field wins" in text and "epochs (stage 1)" in text
    # the same value in both places is no conflict
    assert merge_form({"training": {"epochs": 6}}, form)["training"]["epochs"] == 6


def test_the_page_refuses_a_conflicting_toml_override_and_states_the_precedence(store):
    before = store.get_project("demo").training_config
    at = open_page("training", project="demo")
    no_exception(at)
    assert any(c.value == PRECEDENCE for c in at.caption)
    epochs = next(n for n in at.number_input if n.label == "epochs (stage 1)")
    epochs.set_value(int(epochs.value) + 1)
    at.text_area(key="cfg-advanced").set_value(f"[training]\nepochs = {int(epochs.value) + 5}\n")
    next(b for b in at.button if b.label == "Validate and save").click()
    at.run()
    no_exception(at)
    assert any("training.epochs is set twice" in e.value for e in at.error)
    assert not any("Saved" in s.value for s in at.success)
    assert store.get_project("demo").training_config == before


@pytest.mark.parametrize("button", ["Start a retrain", "Full retrain"])
def test_the_run_selector_follows_the_run_just_asked_for(store, button):
    runs = store.runs("demo", kind="retrain")
    at = open_page("training", project="demo")
    picker = next(s for s in at.selectbox if s.label == "Run")
    picker.set_value(runs[-1].id)  # the user looks at an old run
    at.run()
    assert next(s for s in at.selectbox if s.label == "Run").value == runs[-1].id
    next(b for b in at.button if b.label == button).click()
    at.run()
    no_exception(at)
    new = store.runs("demo", kind="retrain")[0]
    assert new.id not in {r.id for r in runs} and new.status == "queued"
    assert next(s for s in at.selectbox if s.label == "Run").value == new.id
    assert f"**Run {new.id}**" in "\n".join(m.value for m in at.markdown)


def test_a_running_retrain_shows_one_line_elapsed_time_left_and_the_dev_f1_chart(store):
    run_id, _ = store.request_run("demo")
    assert store.acquire_retrain(run_id, "w")  # running, started now
    store.update_progress(run_id, {
        "stage": "stage1", "epoch": 2, "step": 12, "total": 120, "loss": 0.5, "log": [],
        "plan": {"stage1": 120, "kd": 60},
        "dev_f1": [{"stage": "stage1", "epoch": 1, "de": 0.42, "score": 0.42}]})
    at = open_page("training", project="demo")
    no_exception(at)
    bar = at.get("progress")[0]
    assert bar.proto.text.startswith("stage 1 · epoch 2 · 6%")  # 0.95 * 12/180 of the line
    assert "elapsed" in bar.proto.text and "estimating…" in bar.proto.text  # started < 5 s ago
    assert bar.value == 6
    assert any("stage 1: best so far epoch 1 (dev score 42.00)" in c.value for c in at.caption)
    assert at.get("vega_lite_chart"), "no dev F1 chart"
