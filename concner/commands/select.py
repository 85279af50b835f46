"""``concner select``: the next sentences worth a person's time, from a pool file, without
the store, the worker or Argilla (the headless form of what the worker does after a retrain).

Output: one JSON object per picked sentence, in the order to ask: ``rank`` (1 = first),
``strategy``, ``score`` (the strategy's score; for the diversity strategy its base
strategy's), then what ``concner predict`` writes (id, lang, text, tokens, the model's
tags and spans as suggestions, mean_entropy, min_max_prob).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from concner.errors import ConcnerError, DataFormatError

#: the strategy names of :data:`concner.active.strategies.STRATEGIES` (spelled out so that
#: ``concner --help`` does not import torch; a test keeps the two equal)
STRATEGY_NAMES = ("bald", "diversity", "least_confidence", "margin", "max_entropy",
                  "mean_entropy", "mnlp", "random", "teacher_student")


def register(subparsers) -> None:
    from concner.commands.tagging import add_prediction_options
    from concner.config import ActiveConfig

    defaults = ActiveConfig()
    p = subparsers.add_parser(
        "select", help="pick the pool sentences to label or correct next (active learning)",
        description="Score a pool of unlabelled sentences with a saved model and write the "
                    "next sentences to label or correct, most useful first, as JSONL "
                    "(rank, strategy, score, and the model's tags and spans as suggestions).")
    p.add_argument("--model", required=True, help="model folder saved by ConCNER")
    p.add_argument("--pool", required=True,
                   help="pool: .txt (with --format text: one sentence per line), .tsv/.conll, "
                        ".jsonl, or a datasets folder/parquet; ids must be unique")
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--strategy", default=defaults.strategy, choices=STRATEGY_NAMES,
                   help=f"query strategy (default: {defaults.strategy})")
    p.add_argument("--n", type=int, default=defaults.batch_size,
                   help=f"sentences to pick (default: {defaults.batch_size}); with the "
                        "diversity strategy, picked in batches of --batch")
    p.add_argument("--batch", type=int, default=defaults.batch_size,
                   help="diversity strategy: sentences a batch is clustered for (default: "
                        f"{defaults.batch_size}); other strategies ignore it")
    p.add_argument("--exclude", help="file of sentence ids not to pick, one per line "
                                     "(e.g. those already sent to annotators)")
    p.add_argument("--teacher", help="teacher_student: the source-trained (stage-1) model "
                                     "folder (default: MODEL/teacher when it exists)")
    p.add_argument("--mc-passes", type=int, default=defaults.mc_passes,
                   help=f"bald: forward passes with dropout on (default: {defaults.mc_passes})")
    p.add_argument("--diversity-base", default=defaults.diversity_base,
                   choices=[n for n in STRATEGY_NAMES if n != "diversity"],
                   help=f"diversity: the strategy that ranks the candidates (default: "
                        f"{defaults.diversity_base})")
    p.add_argument("--seed", type=int, default=0, help="seeds random, MC dropout and k-means")
    p.add_argument("--format", dest="fmt", default="auto",
                   choices=["auto", "text", "conll", "jsonl", "hf"],
                   help="pool format; auto guesses from the name")
    add_prediction_options(p)
    p.set_defaults(func=run_select)


def _read_ids(path: str) -> set[str]:
    file = Path(path)
    if not file.is_file():
        raise DataFormatError("file not found", path=path)
    return {line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()}


def run_select(args) -> int:
    from concner.active import get_strategy, score_pool
    from concner.active.outputs import repeated_ids
    from concner.commands.common import write_atomic
    from concner.commands.tagging import load_predictor, predict_all, read_input
    from concner.config import ActiveConfig
    from concner.jobs.registry import TEACHER_DIR
    from concner.method.inference import Predictor
    from concner.method.model import NerBundle

    if args.n < 1 or args.batch < 1:
        raise ConcnerError("--n and --batch must be >= 1")
    sentences = read_input(args.pool, args.lang, args.fmt)
    if not sentences:
        raise DataFormatError("the pool has no sentences", path=args.pool)
    # the same check PoolOutputs makes, here before minutes of prediction, naming the file
    dupes = repeated_ids(s.id for s in sentences)
    if dupes:
        raise DataFormatError(f"{len(dupes)} sentence ids occur more than once (first: "
                              f"{dupes[0]}); give every pool sentence its own id", path=args.pool)
    exclude = _read_ids(args.exclude) if args.exclude else set()
    candidates = [s for s in sentences if s.id not in exclude]
    if not candidates:
        raise ConcnerError(f"every one of the {len(sentences)} pool sentences is in --exclude "
                           f"{args.exclude}: nothing is left to pick")
    config = ActiveConfig(strategy=args.strategy, batch_size=args.batch,
                          mc_passes=args.mc_passes, diversity_base=args.diversity_base)
    strategy = get_strategy(args.strategy, config)
    predictor = load_predictor(args)
    teacher = None
    if strategy.needs_teacher:
        folder = Path(args.teacher) if args.teacher else Path(args.model) / TEACHER_DIR
        if not folder.is_dir():
            raise ConcnerError(f"strategy {args.strategy!r} needs the source-trained teacher: "
                               f"pass --teacher <stage-1 model folder> ({folder} does not exist)")
        teacher = Predictor(NerBundle.load(folder), batch_size=args.batch_size,
                            device=args.device)
    start = time.perf_counter()
    # the diversity strategy's sentence embeddings come from the same pass
    predictions, representations = predict_all(
        predictor, candidates, "predict", embeddings=strategy.needs_representations)
    outputs = score_pool(predictor, candidates, strategy, mc_passes=args.mc_passes,
                         teacher=teacher, seed=args.seed,
                         word_probs=[p.word_probs for p in predictions],
                         representations=representations)
    scores = dict(zip(outputs.sentence_ids, strategy.scores(outputs, seed=args.seed)))
    picked = strategy.order(outputs, args.batch, seed=args.seed, limit=args.n)[:args.n]
    seconds = time.perf_counter() - start
    by_id = {s.id: (s, p) for s, p in zip(candidates, predictions)}
    name = args.strategy if args.strategy != "diversity" else f"diversity/{args.diversity_base}"
    lines = []
    for rank, sid in enumerate(picked, 1):
        sentence, prediction = by_id[sid]
        lines.append(json.dumps({"rank": rank, "strategy": name, "score": float(scores[sid]),
                                 **prediction.to_dict(sentence)}, ensure_ascii=False))
    write_atomic(args.out, lines)
    skipped = f" ({len(sentences) - len(candidates)} excluded)" if exclude else ""
    print(f"scored {len(candidates)} pool sentences{skipped} with {name} in {seconds:.1f} s; "
          f"wrote the {len(picked)} to ask first to {args.out}", file=sys.stderr)
    return 0
