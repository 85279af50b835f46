"""The dashboard's F1-against-labels curve: each language's point sits at its own label
count (corrections in one language are not credited to the others), integer count ticks,
and the benchmark's source-only and ConCNER + KD lines for reference."""

from __future__ import annotations

import json

import pytest
from appkit import ROOT, app_env, no_exception, open_page
from storekit import make_sentences

from concner.ui import charts
from concner.ui.views import benchmark_references, load_benchmark, metrics_frame

REPORT = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 4, "per_label": {}}


@pytest.fixture
def store(monkeypatch, tmp_path):
    """Project demo (en -> de, ar) with 3 corrected German pool sentences and none in
    Arabic, and one evaluated run that saw exactly that (its snapshot and metrics rows)."""
    from concner.store import Store
    from concner.store.snapshot import take_snapshot

    store = Store(app_env(monkeypatch, tmp_path))
    store.create_project("demo", source_lang="en", target_langs=["de", "ar"],
                         entity_types=["PER", "ORG", "LOC"], encoder="/nonexistent")
    store.import_sentences("demo", make_sentences("src", 6, "en", seed=1), role="source",
                           split="train")
    for lang in ("de", "ar"):
        store.import_sentences("demo", make_sentences(f"pool-{lang}-", 4, lang, seed=2,
                                                      labelled=False),
                               role="target", split="pool")
    for s in store.sentences("demo", role="target", lang="de")[:3]:
        store.add_annotation("demo", s.id, ["O"] * len(s.tokens), author="ann1")
    run_id, _ = store.request_run("demo")
    store.record_snapshot(run_id, label_counts=take_snapshot(store, "demo").label_counts,
                          config={}, seed=0)
    store.add_metrics(run_id, "dev", {"de": REPORT, "ar": REPORT})
    return store


def test_each_language_is_plotted_at_its_own_corrections(store):
    frame = metrics_frame(store.metrics("demo"), (), store.run_label_counts("demo"))
    assert set(frame["n_target"]) == {3}  # the project total, which every row carries
    points = charts.f1_curve_data(frame, "n_target_lang")
    assert dict(zip(points["language"], points["n_target_lang"])) == {"de": 3, "ar": 0}
    source = charts.f1_curve_data(frame, "n_source")
    assert set(source["n_source"]) == {6}  # source labels are shared by every language


def test_a_re_evaluated_version_is_one_point_at_its_newest_score():
    import pandas as pd

    def row(run_id, version, lang, f1):
        return {"run_id": run_id, "model_version": version, "language": lang, "split": "dev",
                "precision": f1, "recall": f1, "f1": f1, "support": 4, "n_source": 10 * run_id,
                "n_translated": 0, "n_target": 0, "n_target_lang": 0}

    frame = pd.DataFrame([row(1, 1, "de", 0.50), row(2, 2, "de", 0.60),
                          row(3, 1, "de", 0.55), row(3, 1, "ar", 0.30),  # v1 on a new dev set
                          row(4, None, "de", 0.20)])  # a run that made no version
    frame["model_version"] = frame["model_version"].astype("Int64")
    frame["n_target_lang"] = frame["n_target_lang"].astype("Int64")
    points = charts.f1_curve_data(frame, "n_source")
    got = sorted(zip(points["model_version"], points["language"], points["run_id"],
                     points["F1"]))
    assert got == [("-", "de", 4, 20.0), ("v1", "ar", 3, 30.0), ("v1", "de", 3, 55.0),
                   ("v2", "de", 2, 60.0)]


def test_curve_ticks_are_whole_counts_and_whole_percent(store):
    frame = metrics_frame(store.metrics("demo"), (), store.run_label_counts("demo"))
    spec = charts.f1_curve_chart(frame, x="n_target_lang").to_dict()
    for layer in spec["layer"]:
        x, y = layer["encoding"]["x"], layer["encoding"]["y"]
        assert x["axis"]["format"] == "d" and x["axis"]["tickMinStep"] == 1
        assert y["axis"]["format"] == ".0f"


def test_curve_has_the_benchmark_reference_lines(store):
    bench = load_benchmark(ROOT / "benchmarks" / "results" / "quality.json")
    written = json.loads((ROOT / "benchmarks" / "results" / "quality.json").read_text())
    refs = benchmark_references(bench, ["de", "ar"])
    want = {(lang, name, round(written["table"][system][lang]["mean"], 2))
            for lang in ("de", "ar") for system, name in
            (("source_only", "benchmark: source only"), ("concner_kd", "benchmark: ConCNER + KD"))
            if written["table"][system][lang]["n"]}
    assert {(r.language, r.system, r.F1) for r in refs.itertuples()} == want and want
    frame = metrics_frame(store.metrics("demo"), (), store.run_label_counts("demo"))
    spec = charts.f1_curve_chart(frame, references=refs).to_dict()
    rules = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rule"]
    assert len(rules) == 1 and rules[0]["encoding"]["strokeDash"]["field"] == "system"


def test_dashboard_draws_the_curve_from_such_a_store(store):
    at = open_page("dashboard", project="demo")
    no_exception(at)
    radio = next(r for r in at.radio if r.label == "x axis")
    assert radio.options == list(charts.LABEL_AXES.values())
    radio.set_value("n_target_lang")
    at.run()
    no_exception(at)
    assert at.get("vega_lite_chart") and not at.error
