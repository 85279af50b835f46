"""The Training page's progress: one fraction across a retrain's stages, the time left
from the pace so far ("estimating…" until there is enough), the per-epoch dev F1 and the
kept epoch; and a real tiny retrain that records them in its progress JSON."""

from __future__ import annotations

import pytest

from concner.ui.run_progress import (
    MIN_SECONDS,
    TRAINING_SHARE,
    dev_f1_frame,
    kept_text,
    overall_fraction,
    progress_line,
    seconds_left,
)

PLAN = {"stage1": 120, "kd": 60}


def _at(stage, step=0, total=0, **extra):
    return {"stage": stage, "step": step, "total": total, "plan": dict(PLAN), **extra}


def test_one_line_across_stage1_kd_and_the_final_evaluation():
    points = [_at("snapshot"), _at("stage1", 30, 120, epoch=1), _at("stage1", 120, 120, epoch=3),
              _at("eval", 120, 120, epoch=3, evaluating="stage1"), _at("kd", 30, 60, epoch=1),
              _at("kd", 60, 60, epoch=2), _at("evaluate"), _at("publish"), _at("done")]
    fractions = [overall_fraction(p) for p in points]
    assert fractions == sorted(fractions)  # never goes back between stages
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions[1] == pytest.approx(TRAINING_SHARE * 30 / 180)
    assert fractions[3] == fractions[2] == pytest.approx(TRAINING_SHARE * 120 / 180)
    assert fractions[4] == pytest.approx(TRAINING_SHARE * 150 / 180)  # KD adds to stage 1
    assert fractions[5] == pytest.approx(TRAINING_SHARE)
    assert TRAINING_SHARE < fractions[7] < 1.0


def test_the_running_stage_counts_its_real_step_total_not_the_plan():
    # the plan counted 60 KD steps; the stage reports 90 (e.g. more unlabelled text)
    assert overall_fraction(_at("kd", 45, 90)) == pytest.approx(TRAINING_SHARE * 165 / 210)


def test_a_job_without_a_plan_is_its_one_stage():
    assert overall_fraction({"stage": "predict", "step": 64, "total": 256}) == 0.25
    assert overall_fraction({"stage": "predict", "step": 0, "total": 0}) is None
    assert overall_fraction(None) is None


def test_time_left_is_estimated_from_the_pace_only_when_there_is_enough():
    halfway = _at("stage1", 90, 120, epoch=2)  # 0.95 * 90/180 of the line
    fraction = overall_fraction(halfway)
    assert seconds_left(halfway, 100.0) == pytest.approx(100.0 * (1 - fraction) / fraction)
    assert seconds_left(halfway, MIN_SECONDS / 2) is None  # too early to tell
    assert seconds_left(_at("stage1", 2, 120, epoch=1), 60.0) is None  # 2 steps: not enough
    assert seconds_left(_at("snapshot"), 60.0) is None
    assert seconds_left(_at("done"), 60.0) == 0.0
    assert "estimating…" in progress_line(_at("stage1", 2, 120, epoch=1), 30.0)
    line = progress_line(halfway, 100.0)
    assert "stage 1 · epoch 2 · 48%" in line and "elapsed 1 min 40 s" in line
    assert "about 1 min 51 s left" in line
    assert "dev evaluation after stage 1 epoch 3" in progress_line(
        _at("eval", 120, 120, epoch=3, evaluating="stage1"), 200.0)


def test_dev_f1_per_epoch_runs_on_across_stages_and_names_the_kept_epoch():
    progress = {"dev_f1": [
        {"stage": "stage1", "epoch": 1, "de": 0.5, "ar": 0.3, "score": 0.4},
        {"stage": "stage1", "epoch": 2, "de": 0.7, "ar": 0.5, "score": 0.6},
        {"stage": "stage1", "epoch": 3, "de": 0.6, "ar": 0.6, "score": 0.6},
        {"stage": "kd", "epoch": 1, "de": 0.8, "ar": 0.6, "score": 0.7}]}
    frame = dev_f1_frame(progress)
    assert sorted(set(frame["language"])) == ["ar", "de", "score"]
    kd = frame[frame["label"] == "KD epoch 1"]
    assert set(kd["epoch"]) == {4}  # KD continues the x axis after stage 1's 3 epochs
    assert kd.set_index("language")["F1"].to_dict() == {"de": 80.0, "ar": 60.0, "score": 70.0}
    # while training: the first epoch with the best score, as train() keeps it
    assert kept_text(progress) == ("stage 1: best so far epoch 2 (dev score 60.00) · "
                                   "KD: best so far epoch 1 (dev score 70.00)")
    progress["chosen"] = {"stage1": 3}  # what the trainer reported wins
    assert kept_text(progress).startswith("stage 1: kept epoch 3 (dev score 60.00)")
    assert dev_f1_frame({}).empty and kept_text(None) == ""


def test_a_real_tiny_retrain_records_its_plan_per_epoch_dev_f1_and_kept_epoch(tmp_path):
    import torch
    from storekit import TINY_TRAINING, make_project, tiny_encoder

    from concner.config import load_config
    from concner.jobs.context import JobContext
    from concner.jobs.registry import ModelRegistry
    from concner.jobs.retrain import execute_retrain
    from concner.store import Store

    torch.set_num_threads(1)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    training = {**TINY_TRAINING,
                "training": {**TINY_TRAINING["training"], "epochs": 3, "kd_epochs": 1},
                "loss": {**TINY_TRAINING["loss"], "kd": True}}
    make_project(store, "demo", tiny_encoder(tmp_path), targets=("de", "ar"), n_source=16,
                 n_dev=6, n_pool=8, training=training)
    written = []
    update = store.update_progress
    store.update_progress = lambda run_id, progress: written.append(progress) or update(
        run_id, progress)
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")),
                     load_config(env={}), "test-worker")
    run_id, _ = store.request_run("demo")
    assert execute_retrain(ctx, "demo", run_id) == "succeeded", store.get_run(run_id).error
    progress = store.get_run(run_id).progress
    assert [(e["stage"], e["epoch"]) for e in progress["dev_f1"]] == [
        ("stage1", 1), ("stage1", 2), ("stage1", 3), ("kd", 1)]
    assert all({"de", "ar", "score"} <= set(e) for e in progress["dev_f1"])
    stage1 = [e for e in progress["dev_f1"] if e["stage"] == "stage1"]
    best = max(stage1, key=lambda e: e["score"])  # the first of the best, as train() keeps
    assert progress["chosen"] == {"stage1": best["epoch"], "kd": 1}
    assert any(line.startswith(f"kept stage 1 epoch {best['epoch']}")
               for line in progress["log"])
    # the plan the line is drawn against is the steps the trainer really took
    totals = {p["stage"]: p["total"] for p in written if p.get("stage") in ("stage1", "kd")}
    assert progress["plan"] == totals
    # while it trained, the chart had each epoch as soon as it was evaluated
    seen = [len(p.get("dev_f1", [])) for p in written if p.get("stage") == "eval"]
    assert seen and seen == sorted(seen) and seen[0] == 1
    fractions = [overall_fraction(p) for p in written]
    assert all(f is not None for f in fractions[1:])
    assert fractions[-1] == 1.0
    store.close()
