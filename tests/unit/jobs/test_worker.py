"""The worker as a real process: SIGKILL in the middle of training loses nothing and the
run is redone by the next worker; SIGTERM stops cleanly and re-queues; two processes
writing labels while a retrain runs lose nothing. Integration tests (subprocesses)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from storekit import TINY_TRAINING, database_url, make_project, service_env, tiny_encoder

from concner.argilla.processes import free_port
from concner.config import load_config
from concner.jobs.context import JobContext
from concner.jobs.registry import ModelRegistry
from concner.jobs.retrain import execute_retrain
from concner.store import Store
from concner.store.model_versions import Annotation

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
torch.set_num_threads(1)


def _training(epochs: int) -> dict:
    return {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": epochs}}


def _wait(predicate, timeout: float, what: str, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _start_worker(tmp_path: Path, url: str, name: str) -> subprocess.Popen:
    with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen([sys.executable, "-m", "workers.retrain"], cwd=ROOT,
                                env=service_env(tmp_path, url), stdout=log,
                                stderr=subprocess.STDOUT)


def _in_training(store: Store, run_id: int):
    run = store.get_run(run_id)
    progress = run.progress or {}
    return run.status == "running" and progress.get("stage") == "stage1" and \
        progress.get("step", 0) >= 1


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    url, cleanup = database_url(request.param, tmp_path)
    yield url
    cleanup()


@pytest.mark.slow
def test_sigkill_mid_training_loses_nothing_and_the_run_is_redone(tmp_path):
    url, _ = database_url("sqlite", tmp_path)
    store = Store(url)
    make_project(store, "p", tiny_encoder(tmp_path), n_source=24, n_dev=12, n_pool=30,
                 training=_training(1))
    config = load_config(env={"CONCNER_SERVICES__CHECKPOINTS": str(tmp_path / "models")})
    registry = ModelRegistry.from_config(store, config)
    first, _ = store.request_run("p")
    assert execute_retrain(JobContext(store, registry, config, "setup"), "p", first) == "succeeded"
    v1 = store.active_model_version("p")

    for sent in store.sentences("p", role="target", split="pool")[:20]:
        store.add_annotation("p", sent.id, ["O"] * len(sent.tokens), author="alice")
    labels_before = store.annotation_count("p")
    store.update_training_config("p", _training(2000))  # long enough to be killed mid-way
    doomed, _ = store.request_run("p")  # the worker's first tick enqueues it

    worker = _start_worker(tmp_path, url, "worker1")
    try:
        _wait(lambda: _in_training(store, doomed), 90, "training to start", worker)
        time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    assert worker.returncode == -signal.SIGKILL

    # the store is consistent and complete; the active model still loads and serves
    assert store.get_run(doomed).status == "running"  # nobody has noticed yet
    assert store.annotation_count("p") == labels_before
    assert len(store.sentences("p", role="target", split="pool", labelled=True)) == 20
    assert [v.id for v in store.model_versions("p")] == [v1.id]
    assert store.active_model_version("p").id == v1.id
    from concner.method.inference import Predictor

    bundle, mv = registry.load_active("p")
    (pred,) = Predictor(bundle, batch_size=4).predict(store.sentences("p", split="dev")[:1])
    assert mv.id == v1.id and len(pred.tags) > 0
    with store.read() as s:
        assert s.connection().exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

    store.update_training_config("p", _training(1))
    worker = _start_worker(tmp_path, url, "worker2")
    try:
        redo = _wait(lambda: next((r for r in store.runs("p") if r.retry_of == doomed
                                   and r.status == "succeeded"), None), 120,
                     "the re-queued run to finish", worker)
        lost = store.get_run(doomed)
        # known dead by its pid on this host (or, had the tick come later, by its heartbeat)
        assert lost.status == "failed" and "re-queued" in lost.error
        assert "died (its process is gone)" in lost.error or "heartbeat" in lost.error
        assert redo.label_counts["annotations"] == labels_before
        assert redo.label_counts["target"] == 20
        assert {m.run_id for m in store.metrics("p")} == {first, redo.id}
        assert store.lock_state("p").run_id is None
        assert [v.version for v in store.model_versions("p")] == [1, 2]
        assert any(w.status == "running" for w in store.workers(seen_within=10))

        # SIGTERM during training: stops at the next step, the run is re-queued
        store.update_training_config("p", _training(2000))
        stopped, _ = store.request_run("p")
        _wait(lambda: _in_training(store, stopped), 60, "second training", worker)
        t0 = time.time()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0 and time.time() - t0 < 20
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    interrupted = store.get_run(stopped)
    assert interrupted.status == "failed" and "re-queued" in interrupted.error
    (pending_project, pending_run), = store.pending_retrains()
    assert pending_project == "p" and store.get_run(pending_run).status == "queued"
    assert store.lock_state("p").run_id is None
    assert store.workers()[0].status == "stopped"
    assert store.annotation_count("p") == labels_before


WRITER = """
import json, sys
from concner.store import Store
from concner.store.model_versions import Annotation
url, name, author, ids = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
store = Store(url, migrate=False)
made = []
for rounds in range(2):
    for sid, n in ids:
        made.append(store.add_annotation(name, sid, ["O"] * n, author=f"{author}-{rounds}"))
print(json.dumps(made))
"""


def test_two_writers_during_a_retrain_lose_nothing(db_url, tmp_path):
    store = Store(db_url)
    make_project(store, "p", tiny_encoder(tmp_path), n_source=24, n_dev=12, n_pool=30,
                 training=_training(5000))  # runs until cancelled below
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                     "w")
    before = store.annotation_count("p")
    run, _ = store.request_run("p")
    result = {}
    trainer = threading.Thread(target=lambda: result.update(s=execute_retrain(ctx, "p", run)))
    trainer.start()
    _wait(lambda: _in_training(store, run), 60, "training to start")
    pool = [(s.id, len(s.tokens)) for s in store.sentences("p", role="target", split="pool")]
    env = service_env(tmp_path, db_url)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, db_url, "p", f"writer{k}",
                                 json.dumps(pool)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for k in range(2)]
    outputs = [w.communicate(timeout=120) for w in writers]
    for w, (out, err) in zip(writers, outputs):
        assert w.returncode == 0, err
    assert trainer.is_alive() and store.get_run(run).status == "running"
    store.cancel_run(run)
    trainer.join(120)
    assert result["s"] == "cancelled"
    made = [set(json.loads(out)) for out, _ in outputs]
    assert len(made[0]) == len(made[1]) == 2 * len(pool) and not made[0] & made[1]
    assert store.annotation_count("p") == before + 4 * len(pool)
    with store.read() as s:
        stored = set(s.scalars(sa.select(Annotation.id).where(Annotation.author.like("writer%"))))
    assert stored == made[0] | made[1]
    # the run trained on the snapshot taken at its start, before the writers began
    assert store.get_run(run).label_counts["annotations"] == before


def test_concner_worker_command_beats_and_stops_on_sigterm(tmp_path):
    url, _ = database_url("sqlite", tmp_path)
    store = Store(url)
    log = tmp_path / "cli-worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "concner.cli", "worker"], cwd=ROOT,
                                  env=service_env(tmp_path, url), stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        first = _wait(lambda: [w for w in store.workers() if w.status == "running"], 60,
                      "the worker's heartbeat", worker)[0]
        assert first.pid == worker.pid
        _wait(lambda: store.workers()[0].last_seen > first.last_seen, 10, "a second beat",
              worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    (row,) = store.workers()
    assert row.status == "stopped" and row.worker_id == first.worker_id


@pytest.mark.slow
def test_redis_queue_runs_a_retrain_requested_from_the_cli(tmp_path):
    import os
    import shutil

    if shutil.which("redis-server") is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, _ = database_url("sqlite", tmp_path)
    store = Store(url)
    make_project(store, "p", tiny_encoder(tmp_path), n_source=16, n_dev=8, n_pool=8,
                 training=_training(1))
    env = service_env(tmp_path, url, CONCNER_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                      CONCNER_SERVICES__RETRAIN_MIN_NEW_LABELS="100000")  # on demand only
    worker = None
    try:
        import redis as redis_client

        _wait(lambda: _pings(redis_client, port), 20, "redis to start")
        with open(tmp_path / "redis-worker.log", "w") as out:
            worker = subprocess.Popen([sys.executable, "-m", "workers.retrain"], cwd=ROOT,
                                      env=env, stdout=out, stderr=subprocess.STDOUT)
        cli = subprocess.run([sys.executable, "-m", "concner.cli", "project", "retrain", "p"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                             check=False)
        assert cli.returncode == 0, cli.stderr
        (run,) = store.runs("p")
        assert f"run {run.id} queued" in cli.stdout and not (tmp_path / "queue.db").exists()
        done = _wait(lambda: store.get_run(run.id).status in ("succeeded", "failed"), 120,
                     "the retrain", worker)
        assert done and store.get_run(run.id).status == "succeeded", store.get_run(run.id).error
        assert store.active_model_version("p").run_id == run.id
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        redis.terminate()
        redis.wait(10)


def _pings(redis_client, port: int) -> bool:
    try:
        return bool(redis_client.Redis(host="127.0.0.1", port=port).ping())
    except redis_client.exceptions.ConnectionError:
        return False
