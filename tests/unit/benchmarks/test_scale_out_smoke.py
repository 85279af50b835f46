"""The scale-out benchmark runs end to end (1 and 2 real worker processes on Redis and
PostgreSQL) on a few PAN-X dev sentences with a tiny encoder, and writes its result files
(so the script cannot rot)."""

from __future__ import annotations

import json
import shutil

import pytest
from storekit import postgres_or_skip
from tiny import make_tiny_encoder_dir

from benchmarks import scale_out
from benchmarks.common import PANX

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_scale_out_measures_one_and_two_workers(tmp_path, monkeypatch):
    if not (PANX / "dev-de.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = postgres_or_skip()
    encoder = make_tiny_encoder_dir(tmp_path / "encoder")
    monkeypatch.setattr(scale_out, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(scale_out, "OUT", tmp_path / "work")
    monkeypatch.setattr(scale_out, "_encoder", lambda dev: encoder)
    monkeypatch.delenv("CONCNER_REDIS_URL", raising=False)
    assert scale_out.main(["--versions", "3", "--dev-per-lang", "6", "--db-url", server,
                           "--budget-s", "400"]) == 0
    result = json.loads((tmp_path / "results" / "scale_out.json").read_text())
    one, two = result["runs"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for run in (one, two):
        assert run["status"] == "succeeded", run["error"]
        assert run["shards"] == run["shards_done"] == 3 and run["attempts"] == [1]
        assert run["every_version_runs"] == 1  # only the measured one ran
        assert sum(run["shards_per_worker"]) == 3 and len(run["cpu_s"]) == run["workers"]
        assert len(run["scores"]) == 3 * 2 and run["wall_s"] > 0
    assert result["same_scores"] and one["scores"] == two["scores"]
    md = (tmp_path / "results" / "scale_out.md").read_text()
    assert md.count("\n| ") == 3  # header + one row per worker count
