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


def _order(at, prefix: str = "pool-") -> list[str]:
    """Sentence ids in the order shown (from the metadata line under each sentence)."""
    return [c.value.split("`")[1] for c in at.caption if c.value.startswith(f"`{prefix}")]


def _sentence_blocks(node):
    """Every block that holds exactly one sentence (or prediction-vs-correction table) as
    its own element, with the block's captions."""
    from streamlit.testing.v1.element_tree import Block

    found = []
    for child in getattr(node, "children", {}).values():
        if not isinstance(child, Block):
            continue
        own = [c for c in child.children.values() if not isinstance(c, Block)]
        html = [c.value for c in own if type(c).__name__ == "Markdown"
                and ('class="concner-sent"' in c.value or 'class="concner-diff"' in c.value)]
        if len(html) == 1:
            found.append((html[0], [c.value for c in own if type(c).__name__ == "Caption"]))
        found += _sentence_blocks(child)
    return found


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
    order = _order(at)
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
    order = _order(at)
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
    order = _order(at, "src-pool-")
    assert order == [source[p.sentence_id].id for p in ranked]
    assert not _order(at, "pool-")  # no target sentence on the source side
    assert "Send 5 sentences of 'demo' to Argilla" in [b.label for b in at.button]


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
    # who corrected it: the username stored with the answer, under the sentence and as the
    # correction's column title
    assert any(c.value.startswith(f"`{target.id}`") and c.value.endswith("answered by ann1")
               for c in at.caption)
    assert ">correction by ann1</th>" in html


def test_review_metadata_sits_in_its_own_sentences_block(store):
    at = open_page("review", project="demo")
    no_exception(at)
    blocks = _sentence_blocks(at.main)
    assert len(blocks) == len(_order(at)) > 0
    for html, captions in blocks:
        (meta,) = captions  # one metadata line, in the same block as its sentence
        sid = meta.split("`")[1]
        assert f'data-sentence="{sid}"' in html


def test_review_pages_through_every_sentence(store, monkeypatch):
    from concner.ui import review

    monkeypatch.setattr(review, "PAGE_SIZE", 5)
    at = open_page("review", project="demo")
    next(s for s in at.selectbox if s.label == "Status").set_value("all")
    at.run()
    no_exception(at)
    total = len(store.sentences("demo", role="target", split="pool"))
    pages = -(-total // 5)
    assert pages > 2 and total % 5  # a short last page
    first = _order(at)
    assert len(first) == 5
    assert any(c.value == f"Page 1 of {pages} · sentences 1–5 of {total}" for c in at.caption)
    page = next(n for n in at.number_input if n.label == f"Page (of {pages})")
    page.set_value(pages)
    at.run()
    no_exception(at)
    last = _order(at)
    start = 5 * (pages - 1) + 1
    assert len(last) == total - start + 1 and not set(last) & set(first)
    assert any(c.value == f"Page {pages} of {pages} · sentences {start}–{total} of {total}"
               for c in at.caption)


def test_review_label_filter_says_what_it_filters(store):
    at = open_page("review", project="demo")
    no_exception(at)
    labels = [m.label for m in at.multiselect]
    assert labels == ["Languages", "Has a predicted entity of type"]


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


def test_dashboard_runs_table_in_words(store):
    at = open_page("dashboard", project="demo")
    no_exception(at)
    runs = at.dataframe[0].value
    cells = {str(v) for v in runs.to_numpy().ravel()}
    assert not cells & {"None", "nan", "on_demand", "new_labels", "predict"}
    mv = store.active_model_version("demo")
    retrain = runs[runs["run"] == mv.run_id].iloc[0]
    assert retrain["what"] == "retrain" and retrain["why asked"] == "asked for"
    assert retrain["model"] == f"v{mv.version}"
    assert retrain["mean dev F1"] == f"{mv.mean_f1 * 100:.1f}"
    assert retrain["promotion"] == "promoted (active): no active model yet"
    run = store.get_run(mv.run_id)
    seconds = round((run.finished_at - run.started_at).total_seconds())
    assert retrain["duration"] == (f"{seconds} s" if seconds < 60
                                   else f"{seconds // 60} min {seconds % 60:02d} s")
    counts = run.label_counts
    assert retrain["labels seen"] == (f"{counts['source']} source / {counts['translated']} "
                                      f"translated / {counts['target']} target")
    predict = runs[runs["what"] == "pool prediction"].iloc[0]
    assert predict["model"] == f"used v{mv.version}" and predict["promotion"] == ""


def test_dashboard_reads_the_committed_benchmark_results(store):
    import json

    from appkit import ROOT

    at = open_page("dashboard", project="demo")
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "name" in d.value.columns)
    written = json.loads((ROOT / "benchmarks" / "results" / "quality.json").read_text())
    kd = written["table"]["concner_kd"]["es"]
    row = table[(table["name"] == "ConCNER + KD") & (table["language"] == "es")].iloc[0]
    assert row["f1"] == pytest.approx(kd["mean"]) and row["n"] == kd["n"]
    assert any(written["verdict"] == c.value for c in at.caption)


def test_dashboard_reads_what_the_benchmark_writes(tmp_path, monkeypatch):
    from benchmarks import quality
    from concner.ui import views

    class Args:
        translated, zero_shot, variant = ["es", "de"], ["sw"], "default"

    def row(system, lang, f1, seed):
        return {"system": system, "train_lang": lang, "seed": seed, "slice": "report",
                "variant": "default", "f1": {"en": 0.9, lang: f1}}

    rows = [row("source_only", "es", 0.60, 1), row("source_only", "es", 0.64, 2),
            row("concner_kd", "es", 0.70, 1), row("concner_kd", "de", 0.80, 1)]
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    quality.write_table(rows, Args)  # the benchmark's own writer
    bench = views.load_benchmark(tmp_path / "quality.json")
    got = {(r.system, r.language): (r.f1, r.n) for r in bench.table.itertuples()}
    assert got[("source_only", "es")] == (pytest.approx(62.0), 2)
    assert got[("concner_kd", "es")] == (pytest.approx(70.0), 1)
    assert got[("concner_kd", "de")] == (pytest.approx(80.0), 1)
    assert ("source_only", "sw") not in got  # no seed there: left out, not NaN
    assert bench.verdict.startswith("incomplete")
    refs = views.benchmark_references(bench, ["es", "ar"])
    assert {(r.language, r.system, r.F1) for r in refs.itertuples()} == {
        ("es", "benchmark: source only", 62.0), ("es", "benchmark: ConCNER + KD", 70.0)}


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
    from concner.corpus.export import read_export

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
    from concner.corpus.export import gather, read_export, write_export
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
