"""Review, Dashboard, Training and Export pages against a store with a real trained tiny
model (one retrain and one pool prediction run by the worker's job functions)."""

from __future__ import annotations

import io
import zipfile

import pytest
from appkit import no_exception, open_page, trained_store, use_store


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    trained_store(folder)
    return folder


@pytest.fixture
def store(folder, monkeypatch):
    from concner.store import Store

    use_store(monkeypatch, folder)
    return Store(f"sqlite:///{folder / 'store.db'}", migrate=False)


def _target_predictions(store, mv) -> list:
    """The active model's predictions of target sentences (it predicts the source pool too)."""
    target = {s.meta["db_id"] for s in store.sentences("demo", role="target")}
    return [p for p in store.predictions(mv.id) if p.sentence_id in target]


def _html(at) -> str:
    return "\n".join(m.value for m in at.markdown)


# -- Review ---------------------------------------------------------------------------------
def test_review_highlights_predictions_rtl_and_sorts_by_uncertainty(store):
    mv = store.active_model_version("demo")
    predictions = _target_predictions(store, mv)
    at = open_page("review", project="demo")
    next(s for s in at.selectbox if s.label == "Sort").set_value("uncertainty")
    at.run()
    no_exception(at)
    html = _html(at)
    # every predicted entity is a coloured <mark> with its label and score
    n_marks = html.count('<mark class="concner-ent"')
    assert n_marks == sum(len(p.spans) for p in predictions) > 0
    first = max(predictions, key=lambda p: p.uncertainty)
    assert f"{first.spans[0]['score']:.2f}" in html
    # Arabic sentences are laid out right to left, others by the browser's bidi rules
    assert html.count('dir="rtl" lang="ar"') == 12 and html.count('dir="auto" lang="de"') == 12
    # most uncertain first
    order = [line.split("`")[1] for line in html.splitlines() if line.startswith("`pool-")]
    ids = {s.meta["db_id"]: s.id for s in store.sentences("demo", role="target", split="pool")}
    expected = sorted(predictions, key=lambda p: (-p.uncertainty, ids[p.sentence_id]))
    assert order == [ids[p.sentence_id] for p in expected]


def test_review_sorts_in_the_stored_strategy_order_by_default(store):
    mv = store.active_model_version("demo")
    predictions = _target_predictions(store, mv)
    (strategy,) = {p.al_strategy for p in predictions}
    assert all(p.al_score is not None and p.al_rank is not None for p in predictions)
    at = open_page("review", project="demo")
    no_exception(at)
    sort = next(s for s in at.selectbox if s.label == "Sort")
    assert sort.value == "strategy" and strategy in sort.format_func(sort.value)
    html = _html(at)
    order = [line.split("`")[1] for line in html.splitlines() if line.startswith("`pool-")]
    ids = {s.meta["db_id"]: s.id for s in store.sentences("demo", role="target", split="pool")}
    expected = sorted(predictions, key=lambda p: p.al_rank)
    assert order == [ids[p.sentence_id] for p in expected]
    # the order differs from plain uncertainty on this pool, so the test can tell them apart
    by_uncertainty = sorted(predictions, key=lambda p: (-p.uncertainty, ids[p.sentence_id]))
    assert [p.sentence_id for p in expected] != [p.sentence_id for p in by_uncertainty]


def test_review_filters_by_language_and_label(store):
    at = open_page("review", project="demo")
    at.multiselect[0].set_value(["de"])
    at.multiselect[1].set_value(["ORG"])
    at.run()
    no_exception(at)
    html = _html(at)
    assert 'lang="ar"' not in html
    shown = html.count('<div class="concner-sent"')
    mv = store.active_model_version("demo")
    de_ids = {s.meta["db_id"] for s in store.sentences("demo", role="target", lang="de")}
    expected = sum(1 for p in store.predictions(mv.id)
                   if p.sentence_id in de_ids and any(sp["label"] == "ORG" for sp in p.spans))
    assert shown == expected > 0


def test_review_shows_the_source_sentences_to_label_in_their_own_order(store):
    mv = store.active_model_version("demo")
    source = {s.meta["db_id"]: s for s in store.sentences("demo", role="source", split="pool")}
    ranked = sorted((p for p in store.predictions(mv.id) if p.sentence_id in source),
                    key=lambda p: p.al_rank)
    assert [p.al_rank for p in ranked] == [1, 2, 3, 4, 5]
    at = open_page("review", project="demo")
    at.radio[0].set_value("source")
    at.run()
    no_exception(at)
    assert at.multiselect[0].options == ["en"]
    html = _html(at)
    order = [line.split("`")[1] for line in html.splitlines() if line.startswith("`src-pool-")]
    assert order == [source[p.sentence_id].id for p in ranked]
    assert "`pool-" not in html  # no target sentence on the source side
    assert "Send 5 sentences to Argilla" in [b.label for b in at.button]


def test_review_send_reports_unreachable_argilla(store):
    at = open_page("review", project="demo")
    send = next(b for b in at.button if b.label.startswith("Send "))
    send.click()
    at.run()
    no_exception(at)
    assert at.error and ("Argilla" in at.error[0].value or "API key" in at.error[0].value)


def test_review_shows_prediction_next_to_correction(store):
    pool = store.sentences("demo", role="target", split="pool", lang="de")
    target = pool[0]
    tags = ["O"] * len(target.tokens)
    store.add_annotation("demo", target.id, tags, author="ann1", origin="argilla")
    at = open_page("review", project="demo")
    at.selectbox[0].set_value("corrected")
    at.run()
    no_exception(at)
    html = _html(at)
    assert html.count('<table class="concner-diff"') == 1
    assert "<b>removed</b>" in html  # the annotator removed the model's entities


# -- Dashboard ------------------------------------------------------------------------------
def test_dashboard_curve_per_label_and_runs(store):
    at = open_page("dashboard", project="demo")
    no_exception(at)
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 2  # F1 curve + per-label bars
    runs = at.dataframe[0].value
    assert {store_run.id for store_run in store.runs("demo")} <= set(runs["run"])
    summary = "\n".join(c.value for c in at.code)
    for m in store.metrics("demo"):  # the text twin of the curve: one line per run
        assert f"{m.language} F1 {m.f1 * 100:.1f}" in summary
        assert f"labels {m.n_source} source / {m.n_translated} translated" in summary
    assert "succeeded" in set(runs["status"])


def test_dashboard_reads_benchmark_results(store, tmp_path, monkeypatch):
    from concner.ui import views

    rows = [{"system": "concner", "lang": "de", "seed": s, "f1": 0.7 + s / 100} for s in (1, 2)]
    rows += [{"system": "source-only", "lang": "de", "seed": 1, "f1": 0.6}]
    frame = views.load_benchmark_rows(rows)
    got = dict(zip(frame["system"], frame["f1"]))
    assert got["concner"] == pytest.approx(71.5) and got["source-only"] == pytest.approx(60.0)
    assert list(frame[frame["system"] == "concner"]["n"]) == [2]


# -- Training -------------------------------------------------------------------------------
def test_training_start_and_cancel_retrain(store):
    before = {r.id for r in store.runs("demo", kind="retrain")}
    at = open_page("training", project="demo")
    no_exception(at)
    next(b for b in at.button if b.label == "Start a retrain").click()
    at.run()
    no_exception(at)
    new = [r for r in store.runs("demo", kind="retrain") if r.id not in before]
    assert len(new) == 1 and new[0].status == "queued"
    assert any(f"run {new[0].id}" in s.value for s in at.success)
    # a second request joins the queued one
    next(b for b in at.button if b.label == "Start a retrain").click()
    at.run()
    assert len([r for r in store.runs("demo", kind="retrain") if r.id not in before]) == 1
    assert not store.get_run(new[0].id).force_full
    # "Full retrain" joins it too and makes it a full one
    next(b for b in at.button if b.label == "Full retrain").click()
    at.run()
    no_exception(at)
    assert store.get_run(new[0].id).force_full
    assert any("full one" in i.value for i in at.info)
    cancel = next(b for b in at.button if b.label == f"Cancel run {new[0].id}")
    cancel.click()
    at.run()
    no_exception(at)
    assert store.get_run(new[0].id).status == "cancelled"


def test_training_config_is_validated_before_saving(store):
    original = dict(store.get_project("demo").training_config)
    at = open_page("training", project="demo")
    lr = next(n for n in at.number_input if n.label == "learning rate (encoder)")
    lr.set_value(2.0)
    next(b for b in at.button if b.label == "Validate and save").click()
    at.run()
    no_exception(at)
    assert any("training.learning_rate" in e.value for e in at.error)
    assert store.get_project("demo").training_config == original
    at = open_page("training", project="demo")
    next(n for n in at.number_input if n.label == "λ label contrastive").set_value(0.25)
    next(b for b in at.button if b.label == "Validate and save").click()
    at.run()
    no_exception(at)
    saved = store.get_project("demo").training_config
    assert saved["loss"]["lambda_lcl"] == 0.25
    assert saved["training"]["epochs"] == original["training"]["epochs"]  # kept
    store.update_training_config("demo", original)


def test_training_shows_progress_and_log_of_the_last_run(store):
    at = open_page("training", project="demo")
    no_exception(at)
    runs = store.runs("demo", kind="retrain")
    assert f"**Run {runs[0].id}**" in _html(at)  # the latest run is shown first
    done = next(r for r in runs if r.status == "succeeded")
    if len(runs) > 1:
        next(s for s in at.selectbox if s.label == "Run").set_value(done.id)
        at.run()
    text = _html(at)
    assert f"**Run {done.id}** (retrain, full) · status **succeeded**" in text
    assert any(c.value == "Why full: no active model to update yet" for c in at.caption)
    log = "\n".join(c.value for c in at.code)
    assert all(line in log for line in done.progress["log"])


# -- Export ---------------------------------------------------------------------------------
def test_export_download_round_trips(store, tmp_path):
    from concner.export import read_export

    at = open_page("export", project="demo")
    no_exception(at)
    at.selectbox[0].set_value("jsonl")
    at.run()
    next(b for b in at.button if b.label == "Prepare export").click()
    at.run()
    no_exception(at)
    button = at.get("download_button")[0]
    assert button.label == "Download demo-jsonl.zip"
    _name, data, _counts = at.session_state["export_zip"]  # the bytes the button serves
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path)
    splits, _schema = read_export(tmp_path / "demo-jsonl")
    source = store.sentences("demo", role="source", labelled=True)
    assert [(s.id, s.tokens, s.tags) for s in splits["source"]] == \
           [(s.id, s.tokens, s.tags) for s in source]
    assert len(splits["target_dev"]) == 16 and len(splits["translations"]) > 0


def test_export_needs_login_when_a_password_is_set(store, monkeypatch):
    monkeypatch.setenv("CONCNER_ADMIN_PASSWORD", "s3cret-pw")
    at = open_page("export", project="demo")
    no_exception(at)
    assert not [b for b in at.button if b.label == "Prepare export"]
    assert "s3cret-pw" not in repr(at.main)
    at.text_input[0].input("wrong")
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    assert any("Wrong password" in e.value for e in at.error)
    at.text_input[0].input("s3cret-pw")
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    no_exception(at)
    assert [b for b in at.button if b.label == "Prepare export"]


# -- Overview with a model, and silver export ------------------------------------------------
def test_overview_shows_counts_and_active_model(store):
    at = open_page(project="demo")
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    mv = store.active_model_version("demo")
    assert metrics["Active model"] == f"v{mv.version}"
    assert metrics["source labels"] == "24" and metrics["target gold"] == "16"
    assert any(f"mean target dev F1 {mv.mean_f1 * 100:.1f}" in c.value for c in at.caption)


def test_silver_export_holds_the_active_models_predictions(store, tmp_path):
    from concner.export import gather, read_export, write_export
    from concner.labels import LabelSchema

    splits = gather(store, "demo", ["silver"])
    mv = store.active_model_version("demo")
    by_db = {p.sentence_id: p for p in store.predictions(mv.id)}
    unlabelled = store.sentences("demo", role="target", labelled=False)
    assert [s.id for s in splits["silver"]] == [s.id for s in unlabelled]
    assert [s.tags for s in splits["silver"]] == [by_db[s.meta["db_id"]].tags for s in unlabelled]
    schema = LabelSchema.from_dict(store.get_project("demo").label_schema)
    write_export(splits, schema, "hf", tmp_path / "silver")
    back, _ = read_export(tmp_path / "silver")
    assert [s.meta["model_version"] for s in back["silver"]] == [mv.version] * len(unlabelled)


def test_training_shows_live_progress_and_cancels_a_running_retrain(store):
    run_id, _ = store.request_run("demo")
    assert store.acquire_retrain(run_id, "another-worker")  # as a worker does at start
    try:
        store.update_progress(run_id, {"stage": "stage1", "epoch": 2, "step": 30, "total": 120,
                                       "loss": 0.4321, "log": ["snapshot: 24 source"]})
        at = open_page("training", project="demo")
        no_exception(at)
        bars = at.get("progress")
        assert len(bars) == 1 and bars[0].value == 25  # 30 of 120 steps, in percent
        text = _html(at)
        assert f"**Run {run_id}** (retrain) · status **running** · stage1 · epoch 2 · " \
               "step 30/120 · loss 0.4321" in text
        next(b for b in at.button if b.label == f"Cancel run {run_id}").click()
        at.run()
        no_exception(at)
        assert any("asked to stop" in i.value for i in at.info)
        assert store.cancel_requested(run_id)
    finally:
        store.finish_run(run_id, "cancelled", "test")
        store.release_retrain(run_id)
