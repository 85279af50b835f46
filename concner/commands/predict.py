"""``concner predict`` (JSONL predictions with spans, scores and uncertainty) and
``concner evaluate`` (strict IOB2 seqeval table of a saved model on labelled data)."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

from concner.errors import ConcnerError, DataFormatError

#: sentences handed to the predictor at a time (bounds memory; results do not depend on it)
CHUNK_SENTENCES = 2048


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
    _common(p)
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
    _common(e)
    e.set_defaults(func=run_evaluate)


def _common(p) -> None:
    p.add_argument("--lang", help="language code (ISO 639-1) when the file does not give one")
    p.add_argument("--batch-size", type=int, default=64,
                   help="at most this many sentences per forward pass (on CPU also at most "
                        "1,024 padded tokens; the speed benchmark's setting)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (0: torch's default)")
    p.add_argument("--decoding", choices=["argmax", "viterbi"],
                   help="tag decoding (default: the model's model.decoding)")
    p.add_argument("--repair-iob", action="store_true",
                   help="turn stray I-X tags of labelled input into B-X instead of stopping")


def _read(path: str, lang: str | None, fmt: str, repair_iob: bool = False):
    from concner.corpus import read_any, read_text_lines

    if not Path(path).exists() and fmt in ("text", "conll", "jsonl"):
        raise DataFormatError("file not found", path=path)
    if fmt == "text":
        if not lang:
            raise ConcnerError("--format text needs --lang (e.g. --lang en)")
        return read_text_lines(path, lang)
    return read_any(path, lang, fmt=fmt, repair_iob=repair_iob)


def _predictor(args):
    import torch

    from concner.method.inference import Predictor
    from concner.method.model import NerBundle

    if args.threads < 0:
        raise ConcnerError("--threads must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = NerBundle.load(args.model)
    return Predictor(bundle, batch_size=args.batch_size, device=args.device,
                     decoding=args.decoding)


def _predict_all(predictor, sentences, desc: str, *, embeddings: bool = False):
    """``(predictions, [N, H] sentence embeddings or None)`` in chunks of
    :data:`CHUNK_SENTENCES`, with a progress bar on a terminal."""
    from tqdm import tqdm

    with tqdm(total=len(sentences), desc=desc, unit="sent", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        return predictor.predict_in_chunks(sentences, chunk=CHUNK_SENTENCES,
                                           embeddings=embeddings, on_chunk=bar.update)


def _write_atomic(path: str, lines) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in lines)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_predict(args) -> int:
    sentences = _read(args.input, args.lang, args.fmt, args.repair_iob)
    predictor = _predictor(args)
    start = time.perf_counter()
    predictions, _ = _predict_all(predictor, sentences, "predict")
    seconds = time.perf_counter() - start
    _write_atomic(args.out, (json.dumps(p.to_dict(s), ensure_ascii=False)
                             for s, p in zip(sentences, predictions)))
    n_spans = sum(len(p.spans) for p in predictions)
    print(f"predicted {len(sentences)} sentences ({n_spans} entities) in {seconds:.1f} s "
          f"({len(sentences) / max(seconds, 1e-9):.0f} sentences/s); wrote {args.out}",
          file=sys.stderr)
    return 0


def run_evaluate(args) -> int:
    from concner.method.evaluation import evaluate, format_table

    sentences = _read(args.data, args.lang, "auto", args.repair_iob)
    unlabelled = [s.id for s in sentences if s.tags is None]
    if unlabelled:
        raise DataFormatError(
            f"{len(unlabelled)} sentences have no tags (first: {unlabelled[0]}); evaluation "
            "needs labelled data", path=args.data)
    predictor = _predictor(args)
    predictions, _ = _predict_all(predictor, sentences, "evaluate")
    report = evaluate(sentences, [p.tags for p in predictions])
    print(format_table(report))
    if args.json_out:
        _write_atomic(args.json_out, [json.dumps(report, indent=2)])
    return 0
