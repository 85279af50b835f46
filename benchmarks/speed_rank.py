"""Ranking a large pool: the pool prediction as it was (the whole pool loaded, predicted and
ranked at once) against the streaming job, and the re-rank after new sentences arrive.

    python -m benchmarks.speed --section rank --pool-size 100000

The pool is PAN-X train sentences of es, de, nl, fr, it and pt (labels dropped, languages
interleaved) in a SQLite store, ranked with the default strategy (diversity over MNLP) by
a source-only model trained here in seconds (300 English sentences, one epoch: ranking
costs the same whatever the model learnt). Each path runs in its own process on its own
copy of the store (clean peak RSS), one after another:

- ``today``: what ``execute_predict`` did before streaming (``take_snapshot``, the
  pool predicted in chunks of 256 keeping every prediction, ``rank_pool``,
  ``save_predictions``);
- ``streaming``: :func:`concner.jobs.predict.execute_predict` as the worker runs it;
- ``rerank_after_new``: the streaming job's store plus 1,000 new pool sentences, ranked
  again by the same model (only the new ones are predicted);
- ``streaming_bf16``, ``streaming_int8``: the streaming job with the same model predicting
  in ``model.inference_precision`` bf16 or int8 (concner/method/precision.py): the
  approximate paths, judged by their ask order's agreement with ``today``'s.

Per path: wall and CPU seconds (``resource.getrusage``), peak RSS, the load average before
and after; the ask order's agreement with ``today``'s (same sentence at the same position,
and the same set, in the top 200 and 1,000 of the target pool).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import bench_data as bd
from benchmarks.common import cpu_seconds, markdown_table, peak_rss_mb

LANGS = ("es", "de", "nl", "fr", "it", "pt")
PATHS = ("today", "streaming", "rerank_after_new", "streaming_bf16", "streaming_int8")
#: the streaming job with the model's predictions in another ``model.inference_precision``
PRECISION_PATHS = {"streaming_bf16": "bf16", "streaming_int8": "int8"}
NEW = 1000  # sentences added before the re-rank
TOP = (200, 1000)
PROJECT = "rank"


def _pool(n: int) -> list:
    """``n`` unlabelled PAN-X train sentences, the languages interleaved."""
    per_lang = -(-n // len(LANGS))
    by_lang = [bd.read_panx("train", lang, limit=per_lang) for lang in LANGS]
    mixed = [s.with_tags(None) for group in zip(*by_lang) for s in group]
    return mixed[:n]


def _config(folder: Path, threads: int):
    from concner.config import load_config

    return load_config(env={"CONCNER_SERVICES__DATABASE_URL": f"sqlite:///{folder / 'base.db'}",
                            "CONCNER_SERVICES__CHECKPOINTS": str(folder / "models"),
                            "CONCNER_TRAINING__NUM_THREADS": str(threads)})


def prepare(setup, pool_size: int, new: int) -> Path:
    """The base store (project, pool, active model), built once per pool size."""
    from concner.config import config_from_dict
    from concner.corpus import write_jsonl
    from concner.jobs.registry import ModelRegistry
    from concner.method.training import TrainData, train
    from concner.store import Store

    folder = setup.work / f"rank-{pool_size}"
    if (folder / "ready").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = _config(folder, 1 if setup.smoke else 2)
    store = Store(config.services.database_url)
    store.create_project(PROJECT, source_lang="en", target_langs=list(LANGS),
                         entity_types=["PER", "ORG", "LOC"], encoder=str(setup.full))
    pool = _pool(pool_size + new)
    store.import_sentences(PROJECT, pool[:pool_size], role="target", split="pool")
    write_jsonl(pool[pool_size:], folder / "new.jsonl")
    cfg = {"model": {"encoder": str(setup.full), "freeze_embeddings": True},
           "loss": {"use_translation": False, "kd": False, "lambda_lcl": 0.0, "lambda_tcl": 0.0},
           "training": {"epochs": 1, "batch_size": 16, "eval_every_epoch": False,
                        "num_threads": config.training.num_threads}}
    result = train(config_from_dict(cfg, env={}), TrainData(source=setup.source[:300]))
    ModelRegistry.from_config(store, config).publish(PROJECT, result.bundle, run_id=None,
                                                     mean_f1=None)
    store.close()
    (folder / "ready").write_text("")
    return folder


def _today(ctx, name: str, chunk: int = 256) -> None:
    """The pool prediction before streaming (``execute_predict`` at commit 9d61dda, without
    the run bookkeeping): every pool sentence loaded, predicted and ranked at once."""
    from concner.active.ranking import needs_representations, rank_pool
    from concner.jobs.context import project_config
    from concner.method.inference import Predictor
    from concner.store.snapshot import take_snapshot

    bundle, mv = ctx.registry.load_active(name)
    snap = take_snapshot(ctx.store, name)
    active, tc = project_config(ctx.config, snap).active, ctx.config.training
    predictor = Predictor(bundle, batch_size=tc.eval_batch_size, device=tc.device)
    rows, strategy = [], None
    for pool in (snap.unlabelled_target, snap.unlabelled_source):
        if not pool:
            continue
        preds, emb = predictor.predict_in_chunks(pool, chunk=chunk,
                                                 embeddings=needs_representations(active))
        ranking = rank_pool(predictor, pool, preds, active, seed=tc.seed, representations=emb)
        strategy = ranking.strategy
        rows += [(s.meta["db_id"], list(p.tags), [{"start": sp.start, "end": sp.end, "label": sp.label, "score": sp.score} for sp in p.spans],
                  float(p.mean_entropy), ranking.scores[s.id], ranking.ranks[s.id])
                 for s, p in zip(pool, preds)]
    ctx.store.save_predictions(mv.id, rows, strategy=strategy)


def _ask_order(store, mv_id: int, n: int) -> list[str]:
    """The first ``n`` target pool sentence ids in the stored ask order."""
    import sqlalchemy as sa

    from concner.store.model_versions import PredictionRow, SentenceRow

    with store.read() as s:
        return list(s.scalars(sa.select(SentenceRow.external_id).join(
            PredictionRow, PredictionRow.sentence_id == SentenceRow.id).where(
            PredictionRow.model_version_id == mv_id, SentenceRow.role == "target")
            .order_by(PredictionRow.al_rank, SentenceRow.external_id).limit(n)))


def measure(path: str, folder: Path, smoke: bool) -> dict:
    """One path, in this process, on its own copy of the store."""
    import torch

    from concner.corpus import read_jsonl
    from concner.jobs.context import JobContext
    from concner.jobs.predict import execute_predict
    from concner.jobs.registry import ModelRegistry
    from concner.method.inference import Predictor
    from concner.store import Store

    threads = 1 if smoke else 2
    torch.set_num_threads(threads)
    start_from = "streaming.db" if path == "rerank_after_new" else "base.db"
    shutil.copy(folder / start_from, folder / f"{path}.db")
    config = _config(folder, threads)
    store = Store(f"sqlite:///{folder / f'{path}.db'}")
    ctx = JobContext(store, ModelRegistry.from_config(store, config), config, "speed-benchmark")
    if path == "rerank_after_new":
        store.import_sentences(PROJECT, read_jsonl(folder / "new.jsonl"), role="target",
                               split="pool")
    predicted = []
    real_predict = Predictor.predict

    def counting(predictor, sentences):
        predicted.append(len(sentences))
        return real_predict(predictor, sentences)

    Predictor.predict = counting
    if path in PRECISION_PATHS:  # the same model, predicting in another precision
        real_init = Predictor.__init__

        def init(predictor, *args, **kwargs):
            real_init(predictor, *args, **{**kwargs, "precision": PRECISION_PATHS[path]})

        Predictor.__init__ = init
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    if path == "today":
        _today(ctx, PROJECT)
    else:
        run_id, _ = store.request_run(PROJECT, kind="predict")
        status = execute_predict(ctx, PROJECT, run_id)
        if status != "succeeded":
            raise RuntimeError(f"predict {status}: {store.get_run(run_id).error}")
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    rss = peak_rss_mb()
    load_after = [round(x, 2) for x in os.getloadavg()]
    mv = store.active_model_version(PROJECT)
    order = _ask_order(store, mv.id, max(TOP))
    pool = store.pool_size(PROJECT, "target", store.pool_bound(PROJECT))
    store.close()
    return {"path": path, "pool": pool, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "peak_rss_mb": round(rss, 0), "load_before": load_before, "load_after": load_after,
            "sentences_predicted": sum(predicted) if path != "today" else pool,
            "threads": threads, "order": order}


def _child(path: str, folder: Path, smoke: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.speed", "--one-rank", path, str(folder),
           str(int(smoke))]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"rank path {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(order: list[str], reference: list[str], k: int) -> dict:
    """Top ``k`` of ``order`` vs ``reference``: share of positions with the same sentence,
    and share of sentences in both top ``k``."""
    a, b = order[:k], reference[:k]
    return {"same_position": round(sum(x == y for x, y in zip(a, b)) / max(1, len(b)), 4),
            "same_set": round(len(set(a) & set(b)) / max(1, len(b)), 4)}


def section_rank(setup, args, save=None) -> dict:
    """The three paths one after another, each in a child process; ratios to ``today``.
    ``save(result)`` runs after every path, so a run stopped at its time bound keeps the
    paths that finished."""
    pool_size = 400 if args.smoke else args.pool_size
    new = 40 if args.smoke else NEW
    folder = prepare(setup, pool_size, new)
    runs: dict[str, dict] = {}
    result: dict = {}
    for path in PATHS:
        runs[path] = _child(path, folder, args.smoke)
        print(f"[speed] rank {path}: {runs[path]['seconds']} s, CPU {runs[path]['cpu_seconds']} s, "
              f"peak RSS {runs[path]['peak_rss_mb']} MB", flush=True)
        result = summarise(runs, pool_size, new)
        if save is not None:
            save(result)
    return result


def summarise(runs: dict[str, dict], pool_size: int, new: int) -> dict:
    """The paths measured so far (``order`` replaced by its agreement with ``today``'s)
    and the ratios between those present."""
    reference = runs.get("today", {}).get("order")
    paths = {}
    for name, run in runs.items():
        paths[name] = {k: v for k, v in run.items() if k != "order"}
        if name.startswith("streaming") and reference is not None:
            paths[name]["agreement_vs_today"] = {f"top_{k}": agreement(run["order"], reference, k)
                                                 for k in TOP}
    ratios = {}
    today, streaming = paths.get("today"), paths.get("streaming")
    if today and streaming:
        for key, label in (("seconds", "seconds"), ("cpu_seconds", "cpu"),
                           ("peak_rss_mb", "peak_rss")):
            ratios[f"streaming_vs_today_{label}"] = round(streaming[key] / today[key], 3)
    if streaming:
        for name in ("rerank_after_new", *PRECISION_PATHS):
            if name in paths:
                ratios[f"{name}_vs_streaming_seconds"] = round(
                    paths[name]["seconds"] / streaming["seconds"], 3)
    out = {"pool_size": pool_size, "new_sentences": new, "strategy": "diversity/mnlp (default)",
           "paths": paths, "ratios": ratios, "complete": len(paths) == len(PATHS)}
    if streaming:
        out["extrapolated_100k_streaming_seconds"] = round(streaming["seconds"] * 100_000
                                                           / pool_size, 0)
    return out


def rank_markdown(r: dict) -> list[str]:
    p = r["provenance"]
    rows = [[name, s["pool"], s["sentences_predicted"], s["seconds"], s["cpu_seconds"],
             s["peak_rss_mb"], s["load_before"][0], s["load_after"][0]]
            for name, s in r["paths"].items()]
    agree = [[name, k, v["same_position"], v["same_set"]]
             for name, s in r["paths"].items()
             for k, v in s.get("agreement_vs_today", {}).items()]
    return [f"## Pool ranking ({r['pool_size']} PAN-X target sentences, {r['strategy']})", "",
            (f"`{p['command']}` on {p['machine']}, commit {p['commit']}, {p['date']}; one "
             "process per path, one after another (load = 1-minute load average of the "
             "2 shared cores)."), "",
            markdown_table(["path", "pool", "sentences predicted", "seconds", "CPU seconds",
                            "peak RSS MB", "load before", "load after"], rows), "",
            "Ask order of the streaming paths vs today's (target pool):", "",
            markdown_table(["path", "top", "same sentence at the same position", "same set"],
                           agree), "",
            markdown_table(["ratio", "value"], [[k, v] for k, v in r["ratios"].items()]), "",
            (f"Streaming at 100,000 sentences, extrapolated linearly: "
             f"{r.get('extrapolated_100k_streaming_seconds', '–')} s."
             + ("" if r.get("complete", True) else
                f" Incomplete: only {', '.join(r['paths'])} finished.")), ""]


def run_one(argv: list[str]) -> dict:
    """``--one-rank PATH FOLDER SMOKE`` (the child's side)."""
    path, folder, smoke = argv
    return measure(path, Path(folder), bool(int(smoke)))


__all__ = ["rank_markdown", "run_one", "section_rank", "summarise"]
