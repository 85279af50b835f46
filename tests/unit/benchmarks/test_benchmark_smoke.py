"""The quality benchmark runs end to end in --smoke mode (tiny encoder, a few dozen PAN-X
sentences), resumes without redoing finished cells, and builds its table."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import quality
from benchmarks.common import PANX
from concner.errors import ConfigError


@pytest.mark.slow
def test_quality_smoke_runs_resumes_and_tabulates(tmp_path, monkeypatch):
    if not (PANX / "train-en.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    if os.system("apertium -l >/dev/null 2>&1") != 0 and not os.environ.get("CONCNER_REQUIRE_SERVICES"):
        pytest.skip("apertium is not installed (apt-get install apertium apertium-eng-spa)")
    monkeypatch.setattr(quality, "RESULTS", tmp_path / "results")
    args = ["--smoke", "--systems", "source_only", "src_tr_ce", "concner", "concner_kd",
            "source_only_kd"]
    from benchmarks import smoke

    original = smoke.smoke_setup

    def setup_in_tmp(a):
        a.smoke_work = tmp_path / "work"
        original(a)

    monkeypatch.setattr(smoke, "smoke_setup", setup_in_tmp)
    assert quality.main(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "work" / "quality_smoke.jsonl").read_text().splitlines()]
    keys = {(r["system"], r["train_lang"]) for r in rows}
    assert keys == {("source_only", "en"), ("src_tr_ce", "es"), ("src_tr_ce", "de"),
                    ("concner", "es"), ("concner", "de"), ("concner_kd", "es"),
                    ("concner_kd", "de"), ("source_only_kd", "sw"), ("source_only_kd", "es"),
                    ("source_only_kd", "de")}
    for r in rows:
        assert all(0.0 <= f <= 1.0 for f in r["f1"].values())
        assert r["provenance"]["commit"]
    by_key = {(r["system"], r["train_lang"]): r for r in rows}
    assert by_key[("src_tr_ce", "es")]["n_translations"] > 0
    assert by_key[("source_only", "en")]["n_translations"] == 0
    # a re-run skips every finished cell
    mtime = (tmp_path / "work" / "quality_smoke.jsonl").stat().st_mtime_ns
    assert quality.main(args) == 0
    assert (tmp_path / "work" / "quality_smoke.jsonl").stat().st_mtime_ns == mtime
    # the tuning slice scores the saved models of the same config instead of training them
    # again; a variant with other loss weights trains its own
    assert quality.main(["--smoke", "--slice", "tune", "--systems", "source_only", "concner",
                         "--langs", "es"]) == 0
    assert quality.main(["--smoke", "--slice", "tune", "--systems", "concner", "--langs", "es",
                         "--variant", "lcl0", "--set", "loss.lambda_lcl=0.0"]) == 0
    tune = {(r["system"], r["train_lang"], r["variant"]): r
            for r in map(json.loads, (tmp_path / "work" / "quality_smoke.jsonl").read_text().splitlines())
            if r["slice"] == "tune"}
    assert {("source_only", "en", "default"), ("concner", "es", "default"),
            ("concner", "es", "lcl0")} <= set(tune)
    assert tune[("concner", "es", "default")]["scored_saved_model"] is True
    assert tune[("concner", "es", "default")]["trained_in"]["slice"] == "report"
    assert tune[("concner", "es", "default")]["history"] == by_key[("concner", "es")]["history"]
    assert "scored_saved_model" not in tune[("concner", "es", "lcl0")]
    assert tune[("concner", "es", "lcl0")]["config"]["loss"]["lambda_lcl"] == 0.0
    # the table is built from the rows
    class A:  # the table's view of the arguments
        translated, zero_shot, variant = ["es", "de"], ["sw"], "default"
    for r in rows:
        r["slice"] = "report"
    quality.write_table(rows, A)
    table = json.loads((tmp_path / "results" / "quality.json").read_text())
    assert table["table"]["concner"]["es"]["n"] == 1
    assert "mean (translated)" in table["columns"]


@pytest.mark.slow
def test_speed_smoke_measures_every_section_side_by_side(tmp_path, monkeypatch):
    if not (PANX / "train-en.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    from benchmarks import speed

    monkeypatch.setattr(speed, "RESULTS", tmp_path)
    assert speed.main(["--smoke", "--section", "train", "retrain", "--retrain-variants",
                       "before", "used_rows", "--incremental"]) == 0
    res = json.loads((tmp_path / "speed_smoke.json").read_text())
    variants = res["train"]["variants"]
    assert set(variants) == {"hf_trainer", "concner_ce", "pairs_ce", "pairs_full"}
    for v in variants.values():
        assert v["sentences_per_s"] > 0 and v["peak_rss_mb"] > 0
    # the loop's own timers split a step into its parts
    timing = variants["pairs_full"]["runs"][0]["timing"]
    assert set(timing) == {"data", "forward", "backward", "optimizer"}
    assert res["train"]["ratios"]["concner_ce_vs_hf_trainer"] > 0
    retrain = res["retrain"]
    assert set(retrain["variants"]) == {"before", "used_rows"}
    runs = {r["variant"]: r for r in retrain["runs"]}
    for run in runs.values():
        full = run["full"]
        assert full["seconds"] >= full["train_seconds"] > 0 and 0.0 <= full["f1_es"] <= 1.0
        assert (full["kind"], full["warm_start"]) == ("full", False)
        assert set(full["stages"]) == {"stage1", "kd"} and run["peak_rss_mb"] > 0
        # the worker's job decides: a full retrain first, then an incremental update
        inc = run["incremental"]
        assert (inc["kind"], inc["warm_start"], inc["new_labels"]) == ("incremental", True, 50)
        assert inc["unlabelled"] == 0
    # each variant ran with its own settings, read back from the run
    assert runs["before"]["config"]["training"]["embedding_rows"] == "all"
    assert runs["used_rows"]["config"]["training"]["embedding_rows"] == "used"
    assert retrain["variants"]["before"]["seconds_vs_before"] == 1.0
    assert retrain["provenance"]["machine"]


def test_same_seed_differences_pair_seeds_and_skip_unpaired_ones():
    from types import SimpleNamespace

    args = SimpleNamespace(translated=["es", "de"], zero_shot=["sw"])

    def row(system, lang, seed, **f1):
        return {"system": system, "train_lang": lang, "seed": seed, "f1": f1}

    rows = [row("source_only", "en", 1, en=0.7, es=0.60, de=0.70, sw=0.50),
            row("source_only", "en", 2, en=0.7, es=0.62, de=0.68, sw=0.52),
            row("source_only_kd", "sw", 1, en=0.7, sw=0.53),
            row("src_tr_ce", "es", 1, en=0.7, es=0.61, de=0.99),  # de: not its language
            row("src_tr_ce", "de", 1, en=0.7, de=0.69),
            row("src_tr_ce", "es", 2, en=0.7, es=0.64)]  # seed 2 has no de row yet
    diffs = quality.same_seed_differences(rows, args)
    by = {(d["system"], d["baseline"], d["column"]): d for d in diffs}
    translations = by[("src_tr_ce", "source_only", "mean (translated)")]
    assert translations["per_seed"] == pytest.approx({1: 0.0})  # (61+69)/2 - (60+70)/2
    kd_sw = by[("source_only_kd", "source_only", "sw")]
    assert kd_sw["per_seed"] == pytest.approx({1: 3.0}) and kd_sw["mean"] == pytest.approx(3.0)
    assert ("concner_kd", "src_tr_ce", "mean (translated)") not in by  # no ConCNER + KD rows


def test_quality_set_types_values_as_their_settings_and_refuses_unknown_keys():
    from benchmarks.quality import parse_args

    args = parse_args(["--set", "loss.lambda_tcl=0.1", "--set", "training.cpu_bf16=yes"])
    assert args.overrides == {"loss": {"lambda_tcl": 0.1}, "training": {"cpu_bf16": True}}
    with pytest.raises(SystemExit, match="no setting 'training.lambda_tcl'"):
        parse_args(["--set", "training.lambda_tcl=0.1"])
    with pytest.raises(ConfigError, match="training.epochs must be a whole number"):
        parse_args(["--set", "training.epochs=two"])


@pytest.mark.slow
def test_speed_smoke_ranks_the_pool_on_every_path(tmp_path, monkeypatch):
    """The rank section's five paths run (each in its own process) and are compared with
    the old all-at-once job: the streaming job's ask order is today's; the bf16 and int8
    paths are the same ranking code on other arithmetic, so their agreement is measured,
    not assumed."""
    if not (PANX / "train-en.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    from benchmarks import speed

    monkeypatch.setattr(speed, "RESULTS", tmp_path)
    assert speed.main(["--smoke", "--section", "rank"]) == 0
    rank = json.loads((tmp_path / "speed_smoke.json").read_text())["rank"]
    assert rank["complete"] and set(rank["paths"]) == {
        "today", "streaming", "rerank_after_new", "streaming_bf16", "streaming_int8"}
    for name in ("streaming", "streaming_bf16", "streaming_int8"):
        agree = rank["paths"][name]["agreement_vs_today"]["top_200"]
        assert 0.0 <= agree["same_position"] <= agree["same_set"] <= 1.0
    assert rank["paths"]["streaming"]["agreement_vs_today"]["top_200"]["same_position"] == 1.0
    assert rank["paths"]["rerank_after_new"]["sentences_predicted"] < rank["paths"]["streaming"][
        "sentences_predicted"]
    assert rank["ratios"]["streaming_int8_vs_streaming_seconds"] > 0
    from benchmarks.speed_rank import rank_markdown

    md = "\n".join(rank_markdown(rank))
    assert "| streaming_int8 | top_200 |" in md and "| streaming_bf16 | top_200 |" in md
