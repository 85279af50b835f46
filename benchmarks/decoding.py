"""Argmax (stray I- repaired to B-) vs constrained Viterbi decoding over valid IOB2
sequences: the same word probabilities of one trained model, PAN-X dev F1.

    python -m benchmarks.decoding --model benchmarks/work/runs/source-only-en1k-s13

Writes ``benchmarks/results/decoding.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks import bench_data as bd
from benchmarks.common import RESULTS, markdown_table, provenance


def main(argv=None) -> int:
    import torch

    from concner.method.evaluation import evaluate
    from concner.method.inference import Predictor, viterbi_iob2
    from concner.method.model import NerBundle

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--langs", nargs="+", default=["en", "es", "de", "nl", "ru", "zh"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = NerBundle.load(args.model)
    predictor = Predictor(bundle, batch_size=64, device="cpu")
    rows, out = [], {}
    for lang in args.langs:
        gold = bd.dev(lang, "report", args.n)
        probs = predictor.word_probs(gold)
        argmax = [bundle.schema.decode_valid(x.argmax(1).tolist()) for x in probs]
        viterbi = [bundle.schema.decode(viterbi_iob2(x, bundle.schema.tags)) for x in probs]
        ra, rv = evaluate(gold, argmax), evaluate(gold, viterbi)
        out[lang] = {"argmax": {k: ra[k] for k in ("precision", "recall", "f1")},
                     "viterbi": {k: rv[k] for k in ("precision", "recall", "f1")}}
        rows.append([lang, f"{100 * ra['f1']:.1f}", f"{100 * rv['f1']:.1f}",
                     f"{100 * (rv['f1'] - ra['f1']):+.1f}"])
    prov = provenance()
    (RESULTS / "decoding.json").write_text(json.dumps(
        {"model": args.model, "n_dev": args.n, "f1": out, "provenance": prov}, indent=2))
    md = ["# Decoding: argmax vs constrained Viterbi (same model, same probabilities)", "",
          (f"Model `{args.model}` (source only, 1,000 English sentences), first {args.n} PAN-X "
           f"dev sentences per language. `{prov['command']}` on {prov['machine']}, commit "
           f"{prov['commit']}, {prov['date']}."), "",
          markdown_table(["lang", "argmax F1", "Viterbi F1", "gain"], rows), ""]
    (RESULTS / "decoding.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
