"""The pool-scoring benchmark runs end to end on a few PAN-X sentences with tiny models and
writes a row per strategy (so the script cannot rot)."""

from __future__ import annotations

import json

import pytest
from tiny import make_tiny_bundle

from benchmarks import pool_scoring
from benchmarks.common import PANX


@pytest.mark.slow
def test_pool_scoring_writes_every_strategy(tmp_path, monkeypatch):
    if not (PANX / "train-es.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    monkeypatch.setattr(pool_scoring, "RESULTS", tmp_path)
    make_tiny_bundle(tmp_path / "a", seed=1).save(tmp_path / "student")
    make_tiny_bundle(tmp_path / "b", seed=2).save(tmp_path / "teacher")
    assert pool_scoring.main(["--model", str(tmp_path / "student"), "--teacher",
                              str(tmp_path / "teacher"), "--n", "40", "--rounds", "1",
                              "--threads", "1"]) == 0
    summary = json.loads((tmp_path / "pool_scoring.json").read_text())
    assert summary["n"] == 40 and set(summary["strategies"]) == set(pool_scoring.STRATEGIES)
    bald, mnlp = summary["strategies"]["bald"], summary["strategies"]["mnlp"]
    assert bald["extra_passes_s"] > mnlp["extra_passes_s"]  # 8 MC passes against none
    md = (tmp_path / "pool_scoring.md").read_text()
    assert md.count("\n| ") == len(pool_scoring.STRATEGIES) + 1  # header + a row each
