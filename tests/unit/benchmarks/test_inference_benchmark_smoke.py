"""The predict section of the speed benchmark runs end to end in --smoke mode (an untrained
tiny model, 200 PAN-X es dev sentences) and measures every precision beside the pipeline."""

from __future__ import annotations

import json

import pytest

from benchmarks.common import PANX


@pytest.mark.slow
def test_speed_smoke_predict_measures_pipeline_and_every_precision(tmp_path, monkeypatch):
    if not (PANX / "dev-es.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    from benchmarks import speed

    monkeypatch.setattr(speed, "RESULTS", tmp_path)
    assert speed.main(["--smoke", "--section", "predict"]) == 0
    res = json.loads((tmp_path / "speed_smoke.json").read_text())["predict"]
    assert res["sentences"] == 200 and res["pipeline_seconds"] > 0
    assert set(res["variants"]) == set(speed.PREDICT_VARIANTS)
    for v in res["variants"].values():
        assert v["seconds"] > 0 and v["speedup_vs_pipeline"] > 0
        for key in ("identical_entities_vs_pipeline", "identical_vs_pipeline_where_grouping_agrees",
                    "identical_entities_vs_fp32", "word_tags_vs_fp32"):
            assert 0.0 <= v[key] <= 1.0
    fp32, before = res["variants"]["fp32"], res["variants"]["fp32_before"]
    assert fp32["identical_entities_vs_fp32"] == 1.0
    # the old and the new fp32 path: the same entities
    assert before["identical_entities_vs_fp32"] == 1.0
    # same sub-word ids and weights: wherever the pipeline groups sub-words into the true
    # words, it finds exactly ConCNER's entities, and every disagreement is elsewhere
    diag = res["pipeline_disagreements"]
    assert diag["sentences_with_identical_subword_ids"] == 200
    assert fp32["identical_vs_pipeline_where_grouping_agrees"] == 1.0
    assert diag["fp32_disagreements_where_grouping_differs"] == diag["fp32_disagreements"]
    assert set(res["ratios"]) >= {"fp32_vs_pipeline", "bf16_vs_pipeline", "int8_vs_pipeline",
                                  "fp32_vs_fp32_before"}
