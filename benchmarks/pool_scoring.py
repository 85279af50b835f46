"""What ranking the pool costs after a retrain, per active-learning strategy: the worker's
pool prediction (chunks of 256, as ``concner.jobs.predict.execute_predict``), the passes a
strategy adds (MC dropout for BALD, the teacher for teacher/student), and scoring plus
ordering (``Strategy.order``, batches of ``active.batch_size`` up to
``active.diversity_order_limit``), on N unlabelled PAN-X sentences with one trained model.

    python -m benchmarks.pool_scoring --model benchmarks/work/quality-models/default/concner-es-s1 \\
        --teacher benchmarks/work/quality-models/default/concner-es-s2 --n 10000 --threads 2

Writes ``benchmarks/results/pool_scoring.{json,md}``. The prediction pass with and without
sentence embeddings (what the diversity strategy needs) is timed alternately, ``--rounds``
times each, so the ratio is read side by side on the same machine state.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from benchmarks import bench_data as bd
from benchmarks.common import RESULTS, markdown_table, provenance

STRATEGIES = ["random", "least_confidence", "mnlp", "margin", "mean_entropy", "max_entropy",
              "bald", "diversity", "teacher_student"]
CHUNK = 256  # the worker's prediction chunk


def _predict(predictor, pool, embeddings: bool):
    """The worker's chunked pool prediction; ``(predictions, [N, H] or None, seconds)``."""
    start = time.perf_counter()
    preds, emb = predictor.predict_in_chunks(pool, chunk=CHUNK, embeddings=embeddings)
    return preds, emb, time.perf_counter() - start


def main(argv=None) -> int:
    import torch

    from concner.active import get_strategy, score_pool
    from concner.config import ActiveConfig
    from concner.method.inference import Predictor
    from concner.method.model import NerBundle

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="trained model folder (the student)")
    p.add_argument("--teacher", help="a second model folder, for teacher/student")
    p.add_argument("--lang", default="es")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    active = ActiveConfig()
    pool = bd.unlabelled(args.lang, args.n)
    predictor = Predictor(NerBundle.load(args.model), batch_size=64, device="cpu")
    teacher = (Predictor(NerBundle.load(args.teacher), batch_size=64, device="cpu")
               if args.teacher else None)
    _predict(predictor, pool[:256], False)  # warm-up: the prepacked copy, allocator

    plain, with_emb = [], []
    for _ in range(args.rounds):  # alternate, so both see the same machine state
        preds, _, sec = _predict(predictor, pool, False)
        plain.append(sec)
        preds_e, embeddings, sec = _predict(predictor, pool, True)
        with_emb.append(sec)
    predict_s, predict_emb_s = statistics.median(plain), statistics.median(with_emb)

    results = {}
    for name in STRATEGIES:
        if name == "teacher_student" and teacher is None:
            continue
        strategy = get_strategy(name, active)
        used = preds_e if strategy.needs_representations else preds
        start = time.perf_counter()
        outputs = score_pool(predictor, pool, strategy, mc_passes=active.mc_passes,
                             teacher=teacher, seed=0, word_probs=[x.word_probs for x in used],
                             representations=embeddings)
        extra = time.perf_counter() - start
        start = time.perf_counter()
        strategy.scores(outputs, seed=0)
        order = strategy.order(outputs, active.batch_size, seed=0,
                               limit=active.diversity_order_limit)
        rank_s = time.perf_counter() - start
        assert len(order) == len(pool) == len(set(order))
        base = predict_emb_s if strategy.needs_representations else predict_s
        results[name] = {"predict_s": base, "extra_passes_s": extra, "score_and_order_s": rank_s,
                         "total_s": base + extra + rank_s}
        print(f"{name}: {results[name]}", flush=True)

    mnlp = results["mnlp"]["total_s"]
    rows = [[name, f"{r['predict_s']:.1f}", f"{r['extra_passes_s']:.1f}",
             f"{r['score_and_order_s']:.2f}", f"{r['total_s']:.1f}",
             f"{r['total_s'] / mnlp:.2f}x"] for name, r in results.items()]
    prov = provenance()
    summary = {"n": len(pool), "lang": args.lang, "model": args.model, "teacher": args.teacher,
               "mc_passes": active.mc_passes, "batch_size": active.batch_size,
               "diversity_order_limit": active.diversity_order_limit,
               "predict_s_rounds": plain, "predict_with_embeddings_s_rounds": with_emb,
               "embeddings_over_plain": predict_emb_s / predict_s, "strategies": results,
               "provenance": prov}
    (RESULTS / "pool_scoring.json").write_text(json.dumps(summary, indent=2))
    md = ["# Ranking the pool after a retrain: time per active-learning strategy", "",
          (f"{len(pool)} unlabelled PAN-X {args.lang} train sentences, model `{args.model}`"
           + (f", teacher `{args.teacher}`" if args.teacher else "")
           + f"; BALD with {active.mc_passes} MC-dropout passes; order in batches of "
           f"{active.batch_size} (diversity: clustered, up to {active.diversity_order_limit}). "
           f"`{prov['command']}` on {prov['machine']}, {prov['torch_threads']} torch threads, "
           f"commit {prov['commit']}, {prov['date']}."), "",
          (f"Prediction pass (median of {args.rounds}, alternating): {predict_s:.1f} s plain, "
           f"{predict_emb_s:.1f} s with sentence embeddings "
           f"({predict_emb_s / predict_s:.2f}x; what the diversity strategy needs)."), "",
          markdown_table(["strategy", "prediction pass (s)", "extra passes (s)",
                          "score + order (s)", "total (s)", "vs MNLP"], rows), ""]
    (RESULTS / "pool_scoring.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
