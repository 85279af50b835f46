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
    monkeypatch.setattr(scale_out, "_encoder", lambda texts, name: encoder)
    monkeypatch.delenv("CONCNER_REDIS_URL", raising=False)
    assert scale_out.main(["--versions", "3", "--dev-per-lang", "6", "--db-url", server,
                           "--budget-s", "400"]) == 0
    result = json.loads((tmp_path / "results" / "scale_out.json").read_text())["evaluate"]
    one, two = result["runs"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for run in (one, two):
        assert run["status"] == "succeeded", run["error"]
        assert run["shards"] == run["shards_done"] == 3 and run["attempts"] == [1]
        assert run["sharded_runs"] == 1  # only the measured one ran
        assert sum(run["shards_per_worker"]) == 3 and len(run["cpu_s"]) == run["workers"]
        assert len(run["produced"]) == 3 * 2 and run["wall_s"] > 0
    assert result["same_output"] and one["produced"] == two["produced"]
    md = (tmp_path / "results" / "scale_out.md").read_text()
    assert md.count("\n| ") == 3  # header + one row per worker count
    # the pool prediction, in 3 shards of 4 (12 sentences), beside the evaluation
    assert scale_out.main(["--work", "predict", "--pool", "12", "--pool-shard-sentences", "4",
                           "--db-url", server, "--budget-s", "400"]) == 0
    sections = json.loads((tmp_path / "results" / "scale_out.json").read_text())
    assert sections["evaluate"] == result  # kept
    pool = sections["predict"]
    for run in pool["runs"]:
        assert run["status"] == "succeeded", run["error"]
        assert run["shards"] == run["shards_done"] == 3 and run["attempts"] == [1]
        assert sorted(rank for rank, _ in run["produced"].values()) == list(range(1, 13))
    assert pool["same_output"] and sum(pool["runs"][1]["shards_per_worker"]) == 3
    md = (tmp_path / "results" / "scale_out.md").read_text()
    assert md.count("\n| ") == 6 and "## predict" in md and "## evaluate" in md
