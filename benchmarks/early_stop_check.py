"""Would ``training.early_stop_patience`` pay? Replayed on the source-budget sweep's histories.

    python -m benchmarks.early_stop_check [--patience 1 2]

Early stopping is decided from a stage's per-epoch dev scores alone (the rule of
``TrainingRun._plateaued``: stop before the next epoch once the last ``patience`` epochs
scored no better than the best before them), and every epoch up to the stop is the same
computation as without it. So the sweep's stored histories (``source_budget.jsonl``, one
per trained cell, each epoch's selection score) tell exactly, without training anything,
how many epochs each patience would have saved, and in which stages it would have stopped
before the best epoch (then the stage returns a worse model: the selection-score loss is
given; a KD stage after such a stage-1 stop would differ too, which a replay cannot tell).
Writes ``benchmarks/results/early_stop.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

from benchmarks.common import RESULTS, markdown_table, provenance


def epochs_trained(scores: list[float], patience: int) -> int:
    """How many of ``scores``' epochs a stage trains with ``patience`` (0 = all)."""
    for done in range(1, len(scores) + 1):
        seen = scores[:done]
        if patience and done > patience and max(seen[-patience:]) <= max(seen[:-patience]):
            return done
    return len(scores)


def replay(rows: list[dict], patience: int) -> dict:
    """Per (budget, stage): stages, epochs trained without and with ``patience``, stages
    stopped before their best epoch and the mean selection-score loss of those."""
    out: dict = collections.defaultdict(lambda: {"stages": 0, "epochs_all": 0, "epochs_kept": 0,
                                                  "stopped_early": 0, "lost_best": 0,
                                                  "score_loss": []})
    for row in rows:
        by_stage: dict[str, list[float]] = collections.defaultdict(list)
        for record in row.get("history") or []:
            if "score" in record:
                by_stage[record["stage"]].append(record["score"])
        for stage, scores in by_stage.items():
            cell = out[f"{row['budget']} {stage}"]
            kept = epochs_trained(scores, patience)
            cell["stages"] += 1
            cell["epochs_all"] += len(scores)
            cell["epochs_kept"] += kept
            cell["stopped_early"] += kept < len(scores)
            if max(scores[:kept]) < max(scores):
                cell["lost_best"] += 1
                cell["score_loss"].append(max(scores) - max(scores[:kept]))
    for cell in out.values():
        losses = cell.pop("score_loss")
        cell["epochs_saved_share"] = round(1 - cell["epochs_kept"] / cell["epochs_all"], 3)
        cell["mean_score_loss_where_lost"] = round(100 * sum(losses) / len(losses), 2) if losses else 0.0
    return dict(sorted(out.items(), key=lambda kv: (int(kv[0].split()[0]), kv[0])))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patience", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rows", default=str(RESULTS / "source_budget.jsonl"))
    args = p.parse_args(argv)
    with open(args.rows, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("history")]
    result = {"n_histories": len(rows), "by_patience": {str(k): replay(rows, k) for k in args.patience},
              "provenance": provenance()}
    (RESULTS / "early_stop.json").write_text(json.dumps(result, indent=2))
    prov = result["provenance"]
    md = ["# Early stopping replayed on the source-budget sweep's training histories", "",
          (f"`{prov['command']}`, commit {prov['commit']}, {prov['date']}: {len(rows)} trained "
          "cells of `source_budget.jsonl` (their stage 1 has 5 epochs, KD 2). No training: the "
          "stop rule reads only the per-epoch dev scores, so the replay is exact up to the stop. "
          "'before the best epoch': the stage would return a model worse on its own selection "
          "score (mean loss given, F1 points)."), ""]
    for patience, cells in result["by_patience"].items():
        md += [f"## patience {patience}", "",
               markdown_table(["budget, stage", "stages", "epochs without", "epochs with",
                               "epochs saved", "stages stopped early",
                               "stopped before the best epoch", "mean loss there (F1)"],
                              [[k, c["stages"], c["epochs_all"], c["epochs_kept"],
                                f"{100 * c['epochs_saved_share']:.1f}%", c["stopped_early"],
                                c["lost_best"], c["mean_score_loss_where_lost"]]
                               for k, c in cells.items()]), ""]
    (RESULTS / "early_stop.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
