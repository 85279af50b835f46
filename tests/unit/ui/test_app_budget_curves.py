"""The dashboard's source-label budget section: the app reads what the benchmark's
``write_table`` writes (kept in step by writing a small file with the benchmark's own code),
draws a chart per target group with the project's own points on the in-domain one, and
says which file and command are missing when the results are missing or malformed."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from appkit import app_env, markdown_text, no_exception, open_page

from benchmarks import source_budget
from concner.errors import DataFormatError
from concner.ui import budget_curves, charts

LANGS = ("es", "de", "nl")
PROVENANCE = {"commit": "abc1234", "date": "2026-12-07 05:00 UTC"}


def fabricated_rows() -> list[dict]:
    """Rows as the sweep logs them: source only (one model scored on the in-domain group)
    at 100 and 250 labels, 2 seeds; ConCNER + KD (a model per language) at 100, 2 seeds;
    source + translation (CE) at 100 with only es done (no group mean yet)."""
    rows = []

    def row(system, budget, target, seed, f1):
        rows.append({"system": system, "budget": budget, "target": target, "seed": seed,
                     "f1": {"en": 0.7, **f1}, "seconds": 10.0 + seed,
                     "provenance": PROVENANCE})

    for seed in (1, 2):
        for budget in (100, 250):
            row("source_only", budget, "in_domain", seed,
                {lang: 0.2 + 0.01 * i + budget / 2000 + 0.03 * seed for i, lang in enumerate(LANGS)})
        for i, lang in enumerate(LANGS):
            row("concner_kd", 100, lang, seed, {lang: 0.4 + 0.02 * i + 0.05 * seed})
    row("src_tr_ce", 100, "es", 1, {"es": 0.35})
    return rows


def expected_mean(rows: list[dict], system: str, budget: int) -> tuple[float, int]:
    """The es/de/nl mean F1 (percent) over seeds, computed from the rows directly."""
    per_seed: dict = {}
    for r in rows:
        if r["system"] == system and r["budget"] == budget:
            for lang in LANGS:
                if lang in r["f1"] and (r["target"] == "in_domain" or r["target"] == lang):
                    per_seed.setdefault(r["seed"], {})[lang] = 100 * r["f1"][lang]
    means = [statistics.mean(v.values()) for v in per_seed.values() if len(v) == len(LANGS)]
    return statistics.mean(means), len(means)


@pytest.fixture
def written(tmp_path) -> tuple[Path, dict, list[dict]]:
    """A results file written by the benchmark's own ``write_table`` into ``tmp_path``."""
    args = source_budget.parse_args([])
    args.results, args.work = tmp_path / "source_budget.jsonl", tmp_path / "work"
    rows = fabricated_rows()
    out = source_budget.write_table(rows, args)
    return tmp_path / "source_budget.json", out, rows


def test_the_app_reads_what_the_benchmark_writes(written):
    path, out, rows = written
    curves = budget_curves.load_budget_curves(path)
    points = curves.group_points("in_domain")
    got = {(p.system, p.budget): (round(p.F1, 6), p.seeds) for p in points.itertuples()}
    want = {(s, b): expected_mean(rows, s, b)
            for s, b in [("source_only", 100), ("source_only", 250), ("concner_kd", 100)]}
    assert got == {k: (round(m, 6), n) for k, (m, n) in want.items()}  # CE at 100: only es
    assert set(points["name"]) == {source_budget.LABELS[s] for s in ("source_only", "concner_kd")}
    assert (points["low"] < points["F1"]).all() and (points["high"] > points["F1"]).all()
    assert curves.title("in_domain") == source_budget.GROUP_TITLES["in_domain"]
    assert curves.groups[0] == "in_domain" and set(source_budget.GROUPS) <= set(curves.groups)
    assert curves.group_points("zero_shot").empty
    assert (curves.done, curves.queue) == (out["status"]["done"], out["status"]["queue"])
    assert f"{curves.done} of {curves.queue} cells" in curves.progress_text()


def test_a_file_without_names_or_status_falls_back_to_the_keys(tmp_path):
    path = tmp_path / "source_budget.json"
    path.write_text(json.dumps({"table": {"in_domain": {"100": {
        "concner_kd": {"mean": 40.0, "std": None, "seeds": [1]},
        "src_tr_ce": {"mean": None, "std": None, "seeds": []}}}}}))
    curves = budget_curves.load_budget_curves(path)
    assert curves.points[["name", "budget", "F1", "low", "high"]].values.tolist() == [
        ["concner_kd", 100, 40.0, 40.0, 40.0]]
    assert curves.title("in_domain") == "in_domain" and curves.progress_text() == ""


@pytest.mark.parametrize("text", [
    "{not json", "[]", '{"table": []}', '{"table": {"in_domain": []}}',
    '{"table": {"in_domain": {"a hundred": {}}}}',
    '{"table": {"in_domain": {"100": {"concner_kd": 40}}}}',
])
def test_a_malformed_file_names_itself_and_the_command(tmp_path, text):
    path = tmp_path / "source_budget.json"
    path.write_text(text)
    with pytest.raises(DataFormatError) as err:
        budget_curves.load_budget_curves(path)
    assert str(path) in str(err.value) and budget_curves.TABLE_COMMAND in str(err.value)


def test_a_missing_file_is_none_and_its_message_names_the_command(tmp_path):
    path = tmp_path / "source_budget.json"
    assert budget_curves.load_budget_curves(path) is None
    text = budget_curves.missing_text(path)
    assert str(path) in text and budget_curves.TABLE_COMMAND in text


def metrics_rows(rows: list[tuple]) -> pd.DataFrame:
    """A :func:`concner.ui.views.metrics_frame`-shaped frame from (run, version, language,
    split, f1, n_source) tuples."""
    return pd.DataFrame([{"run_id": r, "model_version": v, "language": lang, "split": split,
                          "f1": f1, "n_source": n} for r, v, lang, split, f1, n in rows])


def test_project_points_are_each_versions_newest_target_dev_mean():
    frame = metrics_rows([
        (1, 1, "de", "dev", 0.2, 50), (1, 1, "ar", "dev", 0.4, 50),
        (2, 1, "de", "dev", 0.5, 50), (2, 1, "ar", "dev", 0.7, 50),  # v1 re-evaluated
        (3, 2, "de", "dev", 0.8, 120), (3, 2, "en", "dev", 0.9, 120),  # en: the source
        (3, 2, "de", "test", 0.1, 120),
        (4, None, "de", "dev", 0.9, 200),  # no model version
        (5, 3, "de", "dev", 0.9, 0),  # no source labels: off a log axis
    ])
    points = budget_curves.project_points(frame, ["de", "ar"])
    assert points[["version", "n_source", "F1", "languages"]].values.tolist() == [
        ["v1", 50, 60.0, "ar, de"], ["v2", 120, 80.0, "de"]]


def test_budget_ticks_are_the_budgets_and_a_project_outside_them():
    inside = pd.DataFrame({"n_source": [150, 400]})
    outside = pd.DataFrame({"n_source": [40, 400, 5000]})
    budgets = [100, 250, 500, 1000]
    assert charts.budget_ticks(budgets) == budgets
    assert charts.budget_ticks(budgets, inside) == budgets
    assert charts.budget_ticks(budgets, outside) == [40, *budgets, 5000]


def test_budget_chart_has_whole_count_ticks_a_band_and_the_project_line(written):
    path, _, _ = written
    points = budget_curves.load_budget_curves(path).group_points("in_domain")
    project = pd.DataFrame([{"model_version": 1, "version": "v1", "n_source": 60, "F1": 50.0,
                             "languages": "de"}])
    spec = charts.budget_chart(points, "in_domain", project).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks.count("area") == 1 and marks.count("line") == 2
    for layer in spec["layer"]:
        x = layer["encoding"]["x"]
        assert x["scale"]["type"] == "log" and x["axis"]["format"] == "d"
        assert x["axis"]["values"] == sorted({*points["budget"], 60})
    assert spec["description"] == "in_domain"
    alone = charts.budget_chart(points, "in_domain").to_dict()
    assert [layer["mark"]["type"] for layer in alone["layer"]].count("line") == 1


# -- the page ------------------------------------------------------------------------------
@pytest.fixture
def demo(monkeypatch, tmp_path):
    """Project demo (en -> de) with model v1: trained on 150 source labels, de dev F1 0.6."""
    from concner.store import Store

    store = Store(app_env(monkeypatch, tmp_path))
    store.create_project("demo", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="/nonexistent")
    run_id, _ = store.request_run("demo")
    store.record_snapshot(run_id, label_counts={"source": 150, "translated": 0, "target": 0},
                          config={}, seed=0)
    version = store.add_model_version("demo", run_id=run_id, path="/nonexistent", mean_f1=0.6,
                                      version=1)
    store.add_metrics(run_id, "dev", {"de": {"precision": 0.6, "recall": 0.6, "f1": 0.6,
                                             "support": 5}}, model_version_id=version.id)
    return store


def budget_charts(at) -> dict[str, list[pd.DataFrame]]:
    """The page's source-budget charts: target group -> the frames each draws."""
    out = {}
    for chart in at.get("vega_lite_chart"):
        group = json.loads(chart.proto.spec).get("description")
        if group in source_budget.GROUPS:
            out[group] = [pa.ipc.open_stream(d.data.data).read_pandas()
                          for d in chart.proto.datasets]
    return out


def test_dashboard_draws_a_chart_per_group_with_the_projects_points(demo, written,
                                                                    monkeypatch):
    path, _, _ = written
    monkeypatch.setattr(budget_curves, "RESULTS_FILE", path)
    at = open_page("dashboard", project="demo")
    no_exception(at)
    drawn = budget_charts(at)
    in_domain = drawn["in_domain"]
    systems = set().union(*(set(f["name"]) for f in in_domain if "name" in f))
    assert systems == {source_budget.LABELS["source_only"], source_budget.LABELS["concner_kd"]}
    own = [f for f in in_domain if "n_source" in f]
    assert len(own) == 1 and own[0][["n_source", "F1"]].values.tolist() == [[150, 60.0]]
    assert len(drawn) == 1  # zero-shot and MasakhaNER have no point yet: said, not drawn
    assert source_budget.GROUP_TITLES["in_domain"] in markdown_text(at)
    assert budget_curves.IN_DOMAIN_NOTE in [c.value for c in at.caption]
    assert any(source_budget.GROUP_TITLES["zero_shot"] in i.value for i in at.info)
    assert not at.error


@pytest.mark.parametrize("text", [None, "{not json"])
def test_dashboard_says_which_file_and_command_when_results_are_missing(
        demo, monkeypatch, tmp_path, text):
    path = tmp_path / "results" / "source_budget.json"
    if text is not None:
        path.parent.mkdir()
        path.write_text(text)
    monkeypatch.setattr(budget_curves, "RESULTS_FILE", path)
    at = open_page("dashboard", project="demo")
    no_exception(at)
    shown = [e.value for e in (at.error if text else at.info)]
    assert any(str(path) in m and budget_curves.TABLE_COMMAND in m for m in shown)
    assert not budget_charts(at)
