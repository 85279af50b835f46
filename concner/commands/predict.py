"""``concner predict`` (JSONL predictions with spans, scores and uncertainty) and
``concner evaluate`` (strict IOB2 seqeval table of a saved model on labelled data)."""

from __future__ import annotations

import json
import sys
import time

from concner.commands.common import write_atomic
from concner.commands.tagging import add_prediction_options, load_predictor, predict_all, read_input
from concner.errors import DataFormatError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="tag a file with a saved model; writes JSONL with spans and scores",
        description="Tag every sentence of a file. Output: one JSON object per line with id, "
                    "lang, text, tokens, tags, spans (start/end character offsets into text, "
                    "label, score, text), mean_entropy and min_max_prob.")
    p.add_argument("--model", required=True, help="model folder saved by ConCNER")
    p.add_argument("--in", dest="input", required=True,
                   help="input: .txt (with --format text: one sentence per line), .tsv/.conll, "
                        ".jsonl, or a datasets folder/parquet")
    p.add_argument("--out", required=True, help="output JSONL file")
    add_prediction_options(p)
    p.add_argument("--format", dest="fmt", default="auto",
                   choices=["auto", "text", "conll", "jsonl", "hf"],
                   help="input format; auto guesses from the name (.txt counts as CoNLL: use "
                        "--format text for raw sentences)")
    p.set_defaults(func=run_predict)

    e = subparsers.add_parser(
        "evaluate", help="score a saved model on labelled data (seqeval strict IOB2)",
        description="Predict labelled sentences and print precision, recall and F1 "
                    "(entity level, strict IOB2) overall, per label and per language.")
    e.add_argument("--model", required=True, help="model folder saved by ConCNER")
    e.add_argument("--data", required=True, help="labelled data: .tsv/.conll, .jsonl, datasets")
    e.add_argument("--json", dest="json_out", help="also write the report as JSON here")
    add_prediction_options(e)
    e.set_defaults(func=run_evaluate)


def run_predict(args) -> int:
    sentences = read_input(args.input, args.lang, args.fmt, args.repair_iob)
    predictor = load_predictor(args)
    start = time.perf_counter()
    predictions, _ = predict_all(predictor, sentences, "predict")
    seconds = time.perf_counter() - start
    write_atomic(args.out, (json.dumps(p.to_dict(s), ensure_ascii=False)
                             for s, p in zip(sentences, predictions)))
    n_spans = sum(len(p.spans) for p in predictions)
    print(f"predicted {len(sentences)} sentences ({n_spans} entities) in {seconds:.1f} s "
          f"({len(sentences) / max(seconds, 1e-9):.0f} sentences/s); wrote {args.out}",
          file=sys.stderr)
    return 0


def run_evaluate(args) -> int:
    from concner.method.evaluation import evaluate, format_table

    sentences = read_input(args.data, args.lang, "auto", args.repair_iob)
    unlabelled = [s.id for s in sentences if s.tags is None]
    if unlabelled:
        raise DataFormatError(
            f"{len(unlabelled)} sentences have no tags (first: {unlabelled[0]}); evaluation "
            "needs labelled data", path=args.data)
    predictor = load_predictor(args)
    predictions, _ = predict_all(predictor, sentences, "evaluate")
    report = evaluate(sentences, [p.tags for p in predictions])
    print(format_table(report))
    if args.json_out:
        write_atomic(args.json_out, [json.dumps(report, indent=2)])
    return 0
