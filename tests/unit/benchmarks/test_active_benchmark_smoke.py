"""The active-learning benchmark end to end in --smoke mode (tiny model, synthetic data),
its resumability, and the curve arithmetic of its report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import active_learning as bench
from benchmarks.active_learning_report import (
    area_under_curve,
    labels_to_reach,
    markdown,
    summarise,
)

torch.set_num_threads(1)


def test_labels_to_reach_interpolates_between_measured_points():
    labels, f1 = [100, 400, 700, 1000], [0.2, 0.5, 0.6, 0.7]
    assert labels_to_reach(labels, f1, 0.55) == pytest.approx(550.0)
    assert labels_to_reach(labels, f1, 0.1) == 100.0
    assert labels_to_reach(labels, f1, 0.71) is None
    # average F1 over the label range: trapezoids (0.35*300 + 0.55*300 + 0.65*300) / 900
    assert area_under_curve(labels, f1) == pytest.approx((0.35 + 0.55 + 0.65) / 3)


def test_summary_compares_each_strategy_with_random_at_the_budget():
    def row(strategy, seed, labels, f1):
        return {"side": "source", "strategy": strategy, "seed": seed, "labels": labels,
                "f1": {"es": f1, "de": f1 + 0.1}}

    rows = [row("random", s, n, v) for s in (1, 2) for n, v in [(100, 0.1), (550, 0.3), (1000, 0.5)]]
    rows += [row("mnlp", 1, n, v) for n, v in [(100, 0.1), (550, 0.55), (1000, 0.6)]]
    summary = summarise(rows, budget=1000, seeds=[1, 2])["source"]
    assert summary["random_f1_at_budget"] == pytest.approx(0.55)  # mean of es 0.5, de 0.6
    mnlp = summary["strategies"]["mnlp"]
    # mnlp's mean curve: 0.15, 0.60, 0.65 -> reaches 0.55 between 100 and 550
    assert mnlp["labels_to_reach_random"] == pytest.approx(100 + (0.55 - 0.15) / 0.45 * 450)
    assert mnlp["complete"] is False  # one seed of two
    assert summary["strategies"]["random"]["complete"] is True
    assert summary["strategies"]["random"]["std"][-1] == 0.0
    # per seed, against random of the same seed: seed 1 is the whole mnlp curve
    assert mnlp["per_seed"][1]["labels_to_reach_random"] == pytest.approx(
        100 + (0.55 - 0.15) / 0.45 * 450)
    assert mnlp["per_seed"][1]["at_budget"] and 2 not in mnlp["per_seed"]
    # an extra seed run for random only does not make mnlp incomplete; a missing one does
    rows += [row("mnlp", 2, n, v) for n, v in [(100, 0.1), (550, 0.5), (1000, 0.6)]]
    rows += [row("random", 3, n, v) for n, v in [(100, 0.1), (550, 0.3), (1000, 0.5)]]
    again = summarise(rows, budget=1000, seeds=[1, 2])["source"]["strategies"]
    assert again["mnlp"]["complete"] is True and again["random"]["complete"] is True
    assert summarise(rows, budget=1000, seeds=[1, 2, 3])["source"]["strategies"]["mnlp"][
        "complete"] is False


def test_report_reads_each_seed_against_its_own_random_curve_and_states_the_verdict():
    def row(strategy, seed, labels, f1):
        return {"side": "source", "strategy": strategy, "seed": seed, "labels": labels,
                "f1": {"es": f1}}

    # seed 2's random run is stronger: a strategy seed must be compared with its own seed
    rows = [row("random", 1, n, v) for n, v in [(100, 0.1), (550, 0.3), (1000, 0.5)]]
    rows += [row("random", 2, n, v) for n, v in [(100, 0.1), (550, 0.5), (1000, 0.7)]]
    rows += [row("mnlp", 1, n, v) for n, v in [(100, 0.1), (550, 0.5), (1000, 0.6)]]
    rows += [row("mnlp", 2, n, v) for n, v in [(100, 0.1), (550, 0.45)]]  # still running
    summary = summarise(rows, budget=1000, seeds=[1, 2])
    mnlp = summary["source"]["strategies"]["mnlp"]
    assert mnlp["per_seed"][1]["labels_to_reach_random"] == pytest.approx(550.0)
    # seed 1's own area: (0.3*450 + 0.55*450) / 900
    assert mnlp["per_seed"][1]["auc"] == pytest.approx((0.3 + 0.55) / 2)
    assert mnlp["per_seed"][2] == {"final": None, "random_at_budget": pytest.approx(0.7),
                                   "auc": pytest.approx((0.1 + 0.45) / 2),
                                   "auc_vs_random": None,  # unfinished: not compared
                                   "labels_to_reach_random": None, "at_budget": False}
    # the area is compared with random's of the same seed, only where both are finished:
    # seed 1's random area is (0.2 + 0.4) / 2
    assert mnlp["per_seed"][1]["auc_vs_random"] == pytest.approx((0.3 + 0.55) / 2 - 0.3)
    assert mnlp["auc_vs_random"] == pytest.approx(0.125) and mnlp["auc_vs_random_seeds"] == 1
    text = markdown(summary, 1000)
    assert "s1 550, s2 running" in text
    assert "largest for **mnlp**, +12.5 F1" in text and "| +12.5 (s1 +12.5) |" in text
    # mean curves: random 0.1, 0.4, 0.6; mnlp 0.1, 0.475, 0.6 (n=1 at 1000) -> 1000 labels
    assert "**not met**; closest: mnlp at 1000 labels" in text
    assert "| mnlp | 10.0 | 47.5 | 60.0 (n=1) |" in text
    assert "Caution" not in text  # random rises to the end: its own count is the budget
    flat = [row("random", 1, n, v) for n, v in [(100, 0.1), (550, 0.6), (1000, 0.5)]]
    flat += [row("mnlp", 1, n, v) for n, v in [(100, 0.1), (550, 0.5), (1000, 0.6)]]
    flat_text = markdown(summarise(flat, budget=1000, seeds=[1]), 1000)
    # random reaches its own 1,000-label F1 (0.5) at 100 + 0.4 / 0.5 * 450 = 460 labels
    assert "random's own curve first reaches that F1 at 460 labels" in flat_text


@pytest.mark.slow
def test_smoke_run_writes_rows_summary_and_plot_and_resumes(tmp_path):
    pytest.importorskip("concner.method.training", reason="concner/method/training.py has not landed yet")
    pytest.importorskip("concner.method.inference", reason="concner/method/inference.py has not landed yet")
    pytest.importorskip("concner.method.evaluation", reason="concner/method/evaluation.py has not landed yet")
    argv = ["--smoke", "--out-dir", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    assert bench.main(argv) == 0

    rows_file = tmp_path / "out" / "active_learning_smoke.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    strategies = {"random", "mnlp", "bald", "diversity", "teacher_student"}
    assert {(r["side"], r["strategy"]) for r in rows} == {(s, n) for s in ("source", "target")
                                                          for n in strategies}
    args = bench.parse_args(["--smoke"])
    schedule = list(range(args.initial, args.budget + 1, args.step))
    for side in ("source", "target"):
        for name in strategies:
            run = sorted((r for r in rows if r["side"] == side and r["strategy"] == name),
                         key=lambda r: r["round"])
            assert [r["labels"] for r in run] == schedule
            picked = [i for r in run for i in r["selected"]]
            assert len(picked) == len(set(picked)) == args.budget - args.initial
            lang = "en" if side == "source" else "es"
            assert all(i.startswith(f"syn-{lang}-") for i in picked)
            assert all(0.0 <= f <= 1.0 for r in run for f in r["f1"].values())
            assert set(run[0]["f1"]) == {"es", "de"}
            if side == "target":
                assert run[-1]["n_target"] == args.budget - args.initial
    summary = json.loads((tmp_path / "out" / "active_learning_smoke.json").read_text())
    for side in ("source", "target"):
        for c in summary[side]["strategies"].values():
            assert c["complete"] and not math.isnan(c["auc"])
    assert (tmp_path / "out" / "active_learning_smoke.png").stat().st_size > 1000

    # resume: drop one run's last row and its checkpoint; the re-run replays the recorded
    # selections and appends exactly that row again
    lost = next(r for r in rows if r["side"] == "source" and r["strategy"] == "mnlp"
                and r["round"] == len(schedule) - 1)
    kept = [r for r in rows if r is not lost]
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in kept))
    (tmp_path / "work" / "source-mnlp-seed1" / "state.json").unlink()
    assert bench.main(argv) == 0
    again = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert len(again) == len(rows)
    new = again[-1]
    assert (new["side"], new["strategy"], new["round"]) == ("source", "mnlp", len(schedule) - 1)
    assert not set(new["selected"]) & {i for r in kept if r["side"] == "source"
                                       and r["strategy"] == "mnlp" for i in r["selected"]}


def test_report_for_a_setting_without_rows_leaves_the_summary_alone(tmp_path, capsys):
    """--report with other sizes (or another encoder) than the rows were made with matched
    nothing and used to blank the committed summary."""
    summary = tmp_path / "active_learning_smoke.md"
    summary.write_text("the committed table\n")
    row = {"setting": "another-setting", "side": "source", "strategy": "random", "seed": 1, "round": 0}
    (tmp_path / "active_learning_smoke.jsonl").write_text(json.dumps(row) + "\n")
    assert bench.main(["--smoke", "--report", "--out-dir", str(tmp_path)]) == 1
    assert summary.read_text() == "the committed table\n"
    assert "another-setting" in capsys.readouterr().err
