"""The source-budget sweep runs end to end in --smoke mode (tiny encoder, a few dozen PAN-X
sentences), its budgets are nested samples, and a rerun skips the finished cells."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from benchmarks import source_budget
from benchmarks.common import PANX


def test_budgets_are_nested_prefixes_of_one_permutation():
    if not (PANX / "train-en.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    for seed in (1, 2):
        big = source_budget.permutation_sample(seed, 250, pool=2000)
        small = source_budget.permutation_sample(seed, 100, pool=2000)
        assert {s.id for s in small} <= {s.id for s in big}
        assert [s.id for s in small] == [s.id for s in big[:100]]
    assert ({s.id for s in source_budget.permutation_sample(1, 100, pool=2000)}
            != {s.id for s in source_budget.permutation_sample(2, 100, pool=2000)})


@pytest.mark.slow
def test_source_budget_smoke_runs_resumes_and_tabulates(tmp_path, monkeypatch, capsys):
    if not (PANX / "train-en.tsv").exists():
        pytest.skip(f"PAN-X data not found at {PANX}")
    if not (PANX.parent / "masakhaner2" / "dev-hau.txt").exists():
        pytest.skip("MasakhaNER 2.0 data not found beside PAN-X")
    if (not os.path.exists("/usr/share/dictd/freedict-eng-deu.index")
            and not os.environ.get("CONCNER_REQUIRE_SERVICES")):
        pytest.skip("the FreeDict en-de dictionary is not installed (apt-get install dict-freedict-eng-deu)")
    monkeypatch.setattr(source_budget, "WORK", tmp_path / "work")
    assert source_budget.main(["--smoke"]) == 0
    log = tmp_path / "work" / "smoke-budget" / "source_budget_smoke.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    keys = {(r["system"], r["budget"], r["target"], r["seed"]) for r in rows}
    assert len(keys) == len(rows)  # no cell twice
    assert ("concner_kd", 8, "de", 1) in keys and ("hf_trainer", 16, "masakhaner", 1) in keys
    assert ("source_only_kd", 16, "hau", 1) in keys and ("source_only", 8, "zero_shot", 1) in keys
    # nested: the 8-sentence sample is the start of the 16-sentence one (same seed)
    first = {(r["system"], r["budget"]): r["first_ids"] for r in rows if r["target"] == "de"}
    assert first[("src_tr_ce", 8)] == first[("src_tr_ce", 16)][:5]
    # the shared source-only model is scored on every group, and KD on MasakhaNER text
    so = {r["target"]: r for r in rows if r["system"] == "source_only" and r["budget"] == 8}
    assert set(so) == {"in_domain", "zero_shot", "masakhaner"}
    assert "de" in so["in_domain"]["f1"] and "hau" in so["masakhaner"]["f1"]
    assert so["zero_shot"]["scored_saved_model"]
    capsys.readouterr()
    assert source_budget.main(["--smoke"]) == 0
    assert f"{len(rows)} of {len(rows)} cells done" in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == len(rows)  # nothing redone
    assert (tmp_path / "work" / "smoke-budget" / "source_budget_smoke.md").exists()
    # a new machine: the rows are committed, the saved models are not. Re-running a KD cell
    # retrains its stage-1 teacher for the model, and keeps one row for the teacher's cell
    models = next((tmp_path / "work").rglob("budget-models"))
    shutil.rmtree(models)
    kept = [line for line in log.read_text().splitlines()
            if tuple(json.loads(line)[k] for k in ("system", "budget", "target", "seed"))
            != ("concner_kd", 8, "de", 1)]
    log.write_text("\n".join(kept) + "\n")
    capsys.readouterr()
    assert source_budget.main(["--smoke"]) == 0
    assert "concner b8 de seed 1: retrained as a teacher" in capsys.readouterr().out
    again = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(again) == len(rows)  # the KD row back, the teacher's not doubled
    assert len({(r["system"], r["budget"], r["target"], r["seed"]) for r in again}) == len(again)
    # a shared model trained on a new machine is scored on every group it lacks at once, in
    # the same cell: the session may end before the group's own cell comes up, and the next
    # machine would have to train the same model again
    shutil.rmtree(models)
    cells = [("source_only", 8, group, 1) for group in ("in_domain", "zero_shot", "masakhaner")]
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()
                           if tuple(json.loads(line)[k] for k in
                                    ("system", "budget", "target", "seed")) not in cells))
    args = source_budget.parse_args(["--smoke"])
    source_budget.smoke_setup(args)
    source_budget.SourceBudget(args).run_cell(*cells[0])  # only the in-domain cell
    back = {(r["system"], r["budget"], r["target"], r["seed"]): r
            for r in map(json.loads, log.read_text().splitlines())}
    assert set(cells) <= set(back) and len(back) == len(rows)
    assert [back[c]["scored_saved_model"] for c in cells] == [False, True, True]
    assert "hau" in back[cells[2]]["f1"] and "sw" in back[cells[1]]["f1"]
