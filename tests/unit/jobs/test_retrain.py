"""Retraining on SQLite and PostgreSQL: the label-count policy, metrics rows with the label
counts each run saw, promotion of better models only, the registry (local and fsspec
URLs), and the Huey jobs (run in immediate mode)."""

from __future__ import annotations

import contextlib
import random
import time

import pytest
import torch
from storekit import TINY_TRAINING, make_project

from concner.config import load_config
from concner.errors import ModelError
from concner.jobs.context import JobContext
from concner.jobs.registry import MANIFEST, ModelRegistry
from concner.jobs.retrain import execute_retrain, maybe_request_retrain
from concner.store import Store

torch.set_num_threads(1)


def _ctx(store, tmp_path, **services) -> JobContext:
    env = {f"CONCNER_SERVICES__{k.upper()}": str(v) for k, v in services.items()}
    config = load_config(env=env)
    return JobContext(store, ModelRegistry.from_config(store, config) if "checkpoints" in services
                      else ModelRegistry(store, str(tmp_path / "models"),
                                         keep_versions=config.services.keep_versions,
                                         promote_tolerance=config.services.promote_tolerance),
                      config, "test-worker")

@contextlib.contextmanager
def _immediate_jobs(ctx: JobContext):
    """Run huey jobs in-process (immediate mode) with ``ctx`` as their context."""
    from concner.jobs import queue

    ctx.enqueue_retrain = lambda project, run_id: queue.jobs().retrain(project, run_id)
    with queue.running_here(ctx):
        yield



def _label_pool(store, name: str, n: int, rng: random.Random) -> None:
    """An annotator labels ``n`` pool sentences (correctly: the generator's tags)."""
    pool = store.sentences(name, role="target", split="pool", labelled=False)[:n]
    assert len(pool) == n
    for sent in pool:
        tags = [f"I-{_TYPES[tok]}" if tok in _TYPES else "O" for tok in sent.tokens]
        store.add_annotation(name, sent.id, _valid(tags), author=f"ann{rng.randint(1, 3)}")


_TYPES = {"John": "PER", "Smith": "PER", "Mary": "PER", "Google": "ORG", "Microsoft": "ORG",
          "United": "ORG", "Nations": "ORG", "Paris": "LOC", "London": "LOC", "Berlin": "LOC",
          "New": "LOC", "York": "LOC"}


def _valid(tags: list[str]) -> list[str]:
    out = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or out[-1][2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def test_labels_in_steps_of_50_trigger_retrains_with_their_counts(store, tmp_path, encoder):
    make_project(store, "p", encoder, n_source=15, n_dev=10, n_pool=120)
    usable_translations = sum(1 for i in range(15) if i % 4 != 2)  # storekit: every 4th failed
    ctx = _ctx(store, tmp_path)
    k = ctx.config.services.retrain_min_new_labels
    assert k == 50
    rng = random.Random(0)
    imported = store.annotation_count("p")  # 15 source + 15 translations + 10 dev
    assert imported < k and maybe_request_retrain(store, "p", k) is None

    seen = []
    for new_labels, expect_run in ((50 - imported, True), (30, False), (20, True), (49, False),
                                   (1, True)):
        _label_pool(store, "p", new_labels, rng)
        run = maybe_request_retrain(store, "p", k)
        assert (run is not None) == expect_run
        if run is not None:
            assert execute_retrain(ctx, "p", run) == "succeeded", store.get_run(run).error
            seen.append(run)
    labelled_target = [50 - imported, 50 - imported + 50, 50 - imported + 100]
    for run_id, n_target in zip(seen, labelled_target):
        run = store.get_run(run_id)
        assert run.label_counts["target"] == n_target
        assert run.label_counts["source"] == 15
        assert run.label_counts["translated"] == usable_translations
        assert run.label_counts["annotations"] == imported + n_target
        (metric,) = store.metrics("p", run_id=run_id)
        assert (metric.language, metric.split) == ("de", "dev")
        assert (metric.n_source, metric.n_translated, metric.n_target) == (
            15, usable_translations, n_target)
        assert 0.0 <= metric.f1 <= 1.0 and metric.support > 0
    assert [r.id for r in store.runs("p")] == seen[::-1]


def test_better_model_is_promoted_and_worse_is_not(store, tmp_path, encoder):
    good = {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": 5}}
    make_project(store, "p", encoder, training=good)
    ctx = _ctx(store, tmp_path)
    promotions: list[str] = []  # the worker queues a sync (suggestion refresh) on each
    ctx.after_promotion = promotions.append

    def retrain() -> int:
        run, _ = store.request_run("p")
        assert execute_retrain(ctx, "p", run) == "succeeded", store.get_run(run).error
        return run

    first = retrain()
    v1 = store.active_model_version("p")
    assert v1.run_id == first and v1.promoted and v1.mean_f1 > 0.5
    # an untrained model (0 epochs) is much worse: recorded, not promoted
    store.update_training_config("p", {**good, "training": {**good["training"], "epochs": 0}})
    worse = retrain()
    versions = store.model_versions("p")
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].run_id == worse and not versions[1].promoted and not versions[1].active
    assert versions[1].mean_f1 < v1.mean_f1 - ctx.config.services.promote_tolerance / 100
    assert "not promoted" in store.get_run(worse).progress["log"][-1]
    assert store.active_model_version("p").id == v1.id
    assert promotions == ["p"]  # the worse model triggered no refresh
    # a model as good as the active one (same data, config and seed) is promoted
    store.update_training_config("p", good)
    retrain()
    v3 = store.active_model_version("p")
    assert v3.version == 3 and v3.mean_f1 == pytest.approx(v1.mean_f1, abs=0.005)
    assert promotions == ["p", "p"]
    bundle, mv = ctx.registry.load_active("p")
    assert mv.id == v3.id and len(bundle.schema.tags) == 7


def test_registry_on_an_fsspec_url_keeps_the_last_versions(tmp_path):
    from tiny import make_tiny_bundle

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.create_project("p/x y", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    registry = ModelRegistry(store, f"memory://concner-test-{tmp_path.name}", keep_versions=2,
                             promote_tolerance=0.5, cache_dir=str(tmp_path / "cache"))
    bundle = make_tiny_bundle(tmp_path)
    published = [registry.publish("p/x y", bundle, run_id=None, mean_f1=f1)
                 for f1 in (0.80, 0.60, 0.797, 0.70)]
    assert [p.promoted for p in published] == [True, False, True, False]
    versions = store.model_versions("p/x y", include_deleted=True)
    # keep the newest two (v3 active, v4) and never the active one; v1, v2 pruned
    assert [(v.version, v.deleted_at is not None) for v in versions] == [
        (1, True), (2, True), (3, False), (4, False)]
    fs = registry._fs()
    assert not fs.exists(versions[0].path) and fs.exists(f"{versions[2].path}/{MANIFEST}")
    with pytest.raises(ModelError, match="pruned"):
        registry.load(versions[0])
    loaded, mv = registry.load_active("p/x y")
    assert mv.version == 3
    expected, got = bundle.model.state_dict(), loaded.model.state_dict()
    assert sorted(expected) == sorted(got)
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), name
    fs.rm(f"{versions[3].path}/{MANIFEST}")  # as if the upload stopped before the manifest
    with pytest.raises(ModelError, match="incomplete"):
        registry.local_folder(versions[3])


def test_local_registry_is_atomic_and_cleans_leftovers(tmp_path):
    from tiny import make_tiny_bundle

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.create_project("p", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    registry = ModelRegistry(store, str(tmp_path / "models"), keep_versions=1)
    base = tmp_path / "models" / f"p-{store.get_project('p').id}"
    base.mkdir(parents=True)
    (base / ".tmp-v0001-dead").mkdir()  # a write interrupted by a crash
    (base / ".tmp-v0001-dead" / "model.safetensors").write_bytes(b"partial")
    pub = registry.publish("p", make_tiny_bundle(tmp_path), run_id=None, mean_f1=None)
    assert pub.promoted and pub.reason == "no active model yet"
    assert sorted(p.name for p in base.iterdir()) == ["v0001"]
    assert (base / "v0001" / MANIFEST).is_file()
    pub2 = registry.publish("p", make_tiny_bundle(tmp_path), run_id=None, mean_f1=None)
    assert not pub2.promoted and "no dev F1" in pub2.reason
    # keep_versions=1 keeps the newest, and the active v1 is never deleted
    assert sorted(p.name for p in base.iterdir()) == ["v0001", "v0002"]


def test_huey_jobs_in_immediate_mode(store, tmp_path, encoder):
    from concner.jobs import queue as tasks

    make_project(store, "p", encoder, n_pool=15)
    ctx = _ctx(store, tmp_path)
    with _immediate_jobs(ctx):
        run, created = tasks.request_retrain(store, "p")
        assert created and store.get_run(run).status == "succeeded"
        mv = store.active_model_version("p")
        pred_run = tasks.request_predict(store, "p")
        assert store.get_run(pred_run).status == "succeeded", store.get_run(pred_run).error
        preds = store.predictions(mv.id)
        assert len(preds) == 15 and all(len(p.tags) > 0 and p.uncertainty >= 0 for p in preds)
        eval_run = tasks.request_evaluate(store, "p", mv.id)
        (metric,) = store.metrics("p", run_id=eval_run)
        (trained,) = store.metrics("p", run_id=run)
        assert metric.f1 == pytest.approx(trained.f1) and metric.model_version_id == mv.id
        # a dead worker's retrain is failed and re-run by the housekeeping tick
        lost, _ = store.request_run("p")
        assert store.acquire_retrain(lost, "dead")
        ctx.config = load_config(env={"CONCNER_SERVICES__LOCK_STALE_SECONDS": "0.05",
                                      "CONCNER_SERVICES__HEARTBEAT_SECONDS": "0.01"})
        time.sleep(0.2)
        assert tasks.tick(ctx) == {"recovered": 1, "enqueued": 1}
        assert store.get_run(lost).status == "failed"
        assert store.runs("p", kind="retrain")[0].status == "succeeded"
        assert store.runs("p", kind="retrain")[0].retry_of == lost


def test_a_sigkilled_workers_jobs_are_requeued_at_once_by_its_dead_pid(store, tmp_path, encoder):
    """A worker killed with SIGKILL leaves a fresh heartbeat row that says ``running``: the
    tick knows it dead by its pid (concner.jobs.liveness), so its retrain is re-run and its pool
    prediction is re-queued now, not after ``lock_stale_seconds`` (60 s by default)."""
    import signal
    import socket
    import subprocess

    from concner.jobs import queue as tasks

    make_project(store, "p", encoder, n_pool=6)
    ctx = _ctx(store, tmp_path)
    with _immediate_jobs(ctx):
        run, _ = tasks.request_retrain(store, "p")
        assert store.get_run(run).status == "succeeded"
        victim = subprocess.Popen(["sleep", "60"])
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        dead = f"{socket.gethostname()}:{victim.pid}:dead01"
        store.beat_worker(dead, host=socket.gethostname(), pid=victim.pid)  # fresh, "running"
        lost_retrain, _ = store.request_run("p")
        assert store.acquire_retrain(lost_retrain, dead)
        tasks.jobs().huey.immediate = False  # queue the predict run without running it
        pred = tasks.request_predict(store, "p")
        assert store.start_run(pred, dead)
        tasks.jobs().huey.immediate = True
        assert ctx.config.services.lock_stale_seconds >= 30  # nothing is stale by age
        assert tasks.tick(ctx)["recovered"] == 1
        assert "died (its process is gone)" in store.get_run(lost_retrain).error
        lost_pred = store.get_run(pred)
        assert lost_pred.status == "failed" and "re-queued as run" in lost_pred.error
        (again,) = [r for r in store.runs("p", kind="predict") if r.retry_of == pred]
        assert store.get_run(again.id).status == "succeeded", store.get_run(again.id).error
        assert store.runs("p", kind="retrain")[0].retry_of == lost_retrain
        assert store.runs("p", kind="retrain")[0].status == "succeeded"
        assert tasks.tick(ctx)["recovered"] == 0  # once only
        assert len([r for r in store.runs("p", kind="predict") if r.retry_of == pred]) == 1
