"""The quality tables: the tuning table lists every variant tried on the tuning slice with
what it changed (never mixing in reported rows); the report table gives same-seed gains."""

from __future__ import annotations

import json

from benchmarks import quality


class Args:
    translated, zero_shot = ["es", "de"], ["sw"]


def row(variant, system, lang, f1, seed=1, slice_="tune", overrides=None):
    return {"variant": variant, "system": system, "train_lang": lang, "seed": seed,
            "slice": slice_, "f1": {"en": 0.7, lang: f1}, "overrides": overrides or {}}


def test_tuning_table_compares_variants_at_seed_1_and_ignores_report_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    low = {"loss": {"lambda_lcl": 0.1, "lambda_tcl": 0.1}}
    rows = [row("default", "concner", "es", 0.60), row("default", "concner", "de", 0.70),
            row("default", "src_tr_ce", "es", 0.58), row("default", "src_tr_ce", "de", 0.66),
            row("lam01", "concner", "es", 0.64, overrides=low),
            row("lam01", "concner", "de", 0.68, overrides=low),
            row("lam01", "concner", "es", 0.90, seed=2, overrides=low),  # not at seed 1
            row("default", "concner", "es", 0.99, slice_="report")]
    quality.write_tuning_table(rows, Args)
    out = json.loads((tmp_path / "quality_tuning.json").read_text())
    assert out["languages"] == ["es", "de"]
    assert out["rows"] == 7
    default, low_row = out["seed_1"]["default/concner"], out["seed_1"]["lam01/concner"]
    assert default["changed"] == "defaults"
    assert round(default["mean"], 6) == 65.0  # the report-slice 0.99 is not averaged in
    assert default["delta_vs_default"] is None and round(default["delta_vs_ce"], 6) == 3.0
    assert low_row["changed"] == "loss.lambda_lcl=0.1; loss.lambda_tcl=0.1"
    assert round(low_row["f1"]["es"], 6) == 64.0  # seed 1 only: the seed-2 0.90 is not in
    assert round(low_row["delta_vs_default"], 6) == 1.0
    assert round(low_row["delta_vs_ce"], 6) == 4.0
    md = (tmp_path / "quality_tuning.md").read_text()
    assert "lam01" in md and "loss.lambda_tcl=0.1" in md


def test_tuning_table_shows_the_seed_spread_of_the_default_variant(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    rows = [row("default", "concner", lang, f1, seed=seed)
            for seed, f1s in {1: (0.60, 0.70), 2: (0.64, 0.70), 3: (0.62, 0.70)}.items()
            for lang, f1 in zip(["es", "de"], f1s)]
    rows.append(row("t01", "concner", "es", 0.6))
    quality.write_tuning_table(rows, Args)
    out = json.loads((tmp_path / "quality_tuning.json").read_text())
    spread = out["default_all_seeds"]["concner"]
    assert spread["seeds"] == [1, 2, 3]
    assert [round(x, 6) for x in spread["es"]] == [62.0, 2.0]
    assert [round(x, 6) for x in spread["mean (translated)"]] == [66.0, 1.0]
    assert out["seed_1"]["t01/concner"]["mean"] is None  # de missing: no mean yet


def test_tuning_table_scores_source_only_on_every_language(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    r = row("default", "source_only", "en", 0.0)
    r["f1"] = {"en": 0.7, "es": 0.5, "de": 0.6, "sw": 0.4}
    quality.write_tuning_table([r], Args)
    out = json.loads((tmp_path / "quality_tuning.json").read_text())
    assert out["seed_1"]["default/source_only"]["f1"] == {"es": 50.0, "de": 60.0, "sw": 40.0}
    assert round(out["seed_1"]["default/source_only"]["mean"], 6) == 55.0


def test_report_table_gives_same_seed_gains_of_kd_over_translation_ce(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    rows = []
    for seed, (ce, kd) in {1: ((0.60, 0.70), (0.61, 0.72)), 2: ((0.50, 0.70), (0.56, 0.70)),
                           3: ((0.60, 0.60), (0.59, 0.60))}.items():
        for lang, c, k in zip(["es", "de"], ce, kd):
            rows.append(row("default", "src_tr_ce", lang, c, seed=seed, slice_="report"))
            rows.append(row("default", "concner_kd", lang, k, seed=seed, slice_="report"))
    rows.append(row("default", "concner_kd", "es", 0.9, seed=4, slice_="report"))  # no pair

    class ReportArgs(Args):
        variant = "default"

    quality.write_table(rows, ReportArgs)
    out = json.loads((tmp_path / "quality.json").read_text())
    assert out["paired_gain_per_seed"] == {"1": 1.5, "2": 3.0, "3": -0.5}
    assert "same-seed gains +1.5, +3.0, -0.5 (2 of 3 positive)" in out["verdict"]
    assert out["table"]["concner_kd"]["mean (translated)"]["n"] == 3  # seed 4 lacks de


def test_only_the_kd_systems_distil_whatever_the_library_default():
    from pathlib import Path

    flags = {s: quality.make_config(s, 1, Path("enc")).loss.kd for s in quality.SYSTEMS}
    assert flags == {s: s.endswith("_kd") for s in quality.SYSTEMS}
