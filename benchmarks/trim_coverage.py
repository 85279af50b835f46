"""How much of a source-budget cell's training text does a trim built for ONE slice miss?

Before commit 2d4c19e the sweep trimmed its shared encoder to the text of the invocation that
first needed it. A session whose first process was ``--systems concner_kd_t2 --budgets 100
--seeds 2`` got a vocabulary covering only seed 2's 100 sentences (plus every dev and
unlabelled set), and the processes beside it trained other seeds and budgets on it. This
counts, per (seed, budget, translated language), the training sentences (English source and
its projected translation) that have at least one sub-word piece outside such a trim: those
sentences were segmented differently from the full sweep's trim. Tokenisation only; about a
minute. Writes benchmarks/results/trim_coverage.json and .md.

    python -m benchmarks.trim_coverage
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks import source_budget as sb
from benchmarks.common import RESULTS, markdown_table, provenance, require_encoder


def _pieces(tokenizer, sentences: list) -> list[set[int]]:
    """Per sentence, the piece ids of its words (as NER encodes them) and of its text."""
    return [set(tokenizer(s.tokens, is_split_into_words=True)["input_ids"])
            | set(tokenizer(" ".join(s.tokens))["input_ids"]) for s in sentences]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--narrow-seeds", nargs="+", type=int, default=[2])
    p.add_argument("--narrow-budget", type=int, default=100)
    args = p.parse_args(argv)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(require_encoder()))
    bench = sb.SourceBudget(sb.parse_args([]))  # the whole sweep: largest budget 1,000
    vocab: set[int] = set().union(*_pieces(tokenizer, bench.scored_text()))

    def training_text(seed: int, budget: int, lang: str) -> list:
        return bench.source(seed, budget) + bench.translations(seed, budget, lang)[0]

    for seed in args.narrow_seeds:
        for lang in sb.IN_DOMAIN:
            for pieces in _pieces(tokenizer, training_text(seed, args.narrow_budget, lang)):
                vocab |= pieces
    cells = []
    for seed in sb.SEEDS:
        for budget in sb.BUDGETS:
            for lang in sb.IN_DOMAIN:
                pieces = _pieces(tokenizer, training_text(seed, budget, lang))
                missed = sum(1 for p in pieces if p - vocab)
                cells.append({"seed": seed, "budget": budget, "lang": lang,
                              "sentences": len(pieces), "with_a_missing_piece": missed,
                              "share": round(missed / len(pieces), 3)})
    out = {"narrow_trim": {"seeds": args.narrow_seeds, "budget": args.narrow_budget,
                           "pieces": len(vocab)},
           "cells": cells, "provenance": provenance()}
    (RESULTS / "trim_coverage.json").write_text(json.dumps(out, indent=1))
    md = ["# Training text outside a trim built for one slice of the source-budget sweep", "",
          (f"Narrow trim: seeds {args.narrow_seeds} at budget {args.narrow_budget}, plus every dev "
          f"and unlabelled set ({len(vocab):,} pieces). Made by `{out['provenance']['command']}` "
          f"on {out['provenance']['machine']}, commit {out['provenance']['commit']}, "
          f"{out['provenance']['date']}. Share: training sentences (English source + projected "
          "translation) with at least one piece outside the narrow trim."), "",
          markdown_table(["seed", "budget", "lang", "sentences", "share"],
                          [[c["seed"], c["budget"], c["lang"], c["sentences"],
                           f"{100 * c['share']:.0f}%"] for c in cells])]
    (RESULTS / "trim_coverage.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
