"""Issue 20: two real worker processes (``concner worker``) share one sharded run through
the same Huey queue on Redis and the same PostgreSQL store: an evaluation of every model
version, and a pool prediction. One worker is SIGKILLed while it holds a shard: the shard
is retried by the other (attempt 2) and every shard is done exactly once. Evaluation:
every (version, language) metrics row exists exactly once and the scores equal a
single-worker run on SQLite. Pool prediction: every pool sentence is scored exactly once
and the ranks equal a single SQLite worker's.

The shard held is made slow deterministically: the first worker loads a test-only module
(through ``services.sync_modules``, which every worker imports at start) that makes the
first shard of the run's kind it claims wait forever; the second worker does not load it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prockit import ProcessScope, wait_for
from storekit import (
    fresh_postgres_database,
    make_project,
    postgres_or_skip,
    publish_evaluated,
    service_env,
)

from concner.argilla.processes import free_port
from concner.config import load_config
from concner.jobs.context import JobContext
from concner.jobs.evaluate import execute_evaluate
from concner.jobs.registry import ModelRegistry
from concner.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
VERSIONS = 4
LANGS = ("de", "fr")

HOLD_MODULE = '''"""Test-only (tests/integration/test_scale_out.py): the first KIND shard this
worker claims never finishes; the worker is SIGKILLed while it holds it."""
import dataclasses
import threading

from concner.jobs.shards import register_work, work_of

_held = []
_work = work_of("KIND")


def _hold_first(ctx, run, payload):
    if not _held:
        _held.append(payload)
        threading.Event().wait()
    return _work.run_one(ctx, run, payload)


register_work("KIND", dataclasses.replace(_work, run_one=_hold_first))


def register_sync_hooks(registry):
    """No sync hook: this module only holds a shard."""
'''


def _skip(reason: str) -> None:
    if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _project_with_versions(store: Store, tmp_path: Path, models: Path) -> None:
    """Project ``p`` (en -> de, fr) with VERSIONS tiny model versions (fixed seeds, so the
    same weights in every store); their dev scores are stale (no dev fingerprint)."""
    from tiny import make_tiny_bundle

    make_project(store, "p", str(tmp_path / "unused-encoder"), n_source=8, n_dev=24,
                 n_pool=4, targets=LANGS)
    registry = ModelRegistry(store, str(models), keep_versions=VERSIONS + 1)
    for seed in range(VERSIONS):
        bundle = make_tiny_bundle(tmp_path / "bundles", seed=seed)
        publish_evaluated(store, registry, "p", bundle, {lang: 0.0 for lang in LANGS})


def _scores(store: Store, parent: int) -> dict[tuple[int, str], tuple]:
    """``(version, language) -> (precision, recall, f1, support)`` of run ``parent``'s
    per-version runs; fails on a row that exists twice."""
    versions = {mv.id: mv.version for mv in store.model_versions("p")}
    children = {r.id for r in store.runs("p", kind="evaluate")
                if (r.config or {}).get("part_of") == parent}
    out: dict[tuple[int, str], tuple] = {}
    for m in store.metrics("p"):
        if m.run_id in children:
            key = (versions[m.model_version_id], m.language)
            assert key not in out, f"metrics row {key} exists twice"
            out[key] = (m.precision, m.recall, m.f1, m.support)
    return out


def _single_worker_sqlite_scores(tmp_path: Path) -> dict:
    store = Store(f"sqlite:///{tmp_path / 'ref' / 'store.db'}")
    try:
        _project_with_versions(store, tmp_path / "ref", tmp_path / "ref" / "models")
        ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "ref" / "models"),
                                              keep_versions=VERSIONS + 1),
                         load_config(env={}), "single")
        run_id, _ = store.request_evaluation("p", None)
        assert execute_evaluate(ctx, "p", run_id, None) == "succeeded"
        return _scores(store, run_id)
    finally:
        store.close()


def _shards_of(store: Store, run_id: int, pid: int, state: str) -> list:
    return [s for s in store.shards(run_id) if s.state == state and f":{pid}:" in (s.owner or "")]


def _two_workers_one_killed(tmp_path: Path, url: str, store: Store, kind: str, run_id: int,
                            **settings: str):
    """Run queued run ``run_id`` (sharded work ``kind``) on two real workers over Redis and
    ``url``; the first holds the first shard it claims and is SIGKILLed once the second
    has finished one. Returns ``(held shard, doomed pid, survivor pid)`` after the run."""
    if shutil.which("redis-server") is None:
        _skip("redis-server is not installed (apt-get install redis-server)")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "hold_first_shard.py").write_text(HOLD_MODULE.replace("KIND", kind))
    with ProcessScope() as scope:
        port = free_port()
        scope.popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        env = service_env(tmp_path, url, CONCNER_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                          CONCNER_SERVICES__SHARD_WORKERS="2",
                          CONCNER_SERVICES__LOCK_STALE_SECONDS="10",
                          PYTHONPATH=f"{ROOT}{os.pathsep}{hooks}",
                          **{f"CONCNER_SERVICES__{k.upper()}": v for k, v in settings.items()})

        def worker(name: str, **extra: str) -> subprocess.Popen:
            with open(tmp_path / f"{name}.log", "w") as log:
                return scope.popen([sys.executable, "-m", "concner.cli", "worker"],
                                   cwd=ROOT, env={**env, **extra}, stdout=log,
                                   stderr=subprocess.STDOUT)

        # the first worker starts the run (its first tick queues it), hands it to
        # shards and then holds the first shard it claims
        doomed = worker("doomed", CONCNER_SERVICES__SYNC_MODULES="hold_first_shard")
        held = wait_for(lambda: _shards_of(store, run_id, doomed.pid, "claimed"), 120,
                        "the first worker to claim a shard", doomed)
        survivor = worker("survivor")
        wait_for(lambda: _shards_of(store, run_id, survivor.pid, "done"), 120,
                 "the second worker to finish a shard", survivor)
        assert store.get_run(run_id).status == "running"
        os.kill(doomed.pid, signal.SIGKILL)
        assert doomed.wait(30) == -signal.SIGKILL
        wait_for(lambda: store.get_run(run_id).status not in ("queued", "running"), 120,
                 "the run to end", survivor)
        assert survivor.poll() is None  # the survivor did it all after the kill
    return held[0], doomed.pid, survivor.pid


def _assert_retried_once(store: Store, run_id: int, held, doomed: int, survivor: int,
                         n_shards: int) -> None:
    """Every shard done; the held one on a second attempt, by the survivor, after the
    doomed worker was found lost; every other one on its first."""
    shards = store.shards(run_id)
    assert len(shards) == n_shards and all(s.state == "done" for s in shards)
    (retried,) = [s for s in shards if s.id == held.id]
    assert retried.attempts == 2 and f":{survivor}:" in retried.owner
    assert f":{doomed}:" in retried.error and "was lost" in retried.error
    assert all(s.attempts == 1 for s in shards if s.id != retried.id)


def test_two_workers_share_an_evaluation_and_a_killed_workers_shard_is_retried(tmp_path):
    url, drop = fresh_postgres_database(postgres_or_skip())
    expected = _single_worker_sqlite_scores(tmp_path)
    assert len(expected) == VERSIONS * len(LANGS)
    store = Store(url)
    try:
        _project_with_versions(store, tmp_path, tmp_path / "models")
        dev = store.dev_set("p")
        parent, _ = store.request_evaluation("p", None, config={
            "dev_fingerprint": dev.fingerprint, "dev_by_lang": dev.counts})
        held, doomed, survivor = _two_workers_one_killed(tmp_path, url, store, "evaluate",
                                                         parent)
        run = store.get_run(parent)
        assert run.status == "succeeded", run.error
        assert [r.id for r in store.runs("p", kind="evaluate")
                if r.model_version_id is None] == [parent]  # the ticks joined it
        _assert_retried_once(store, parent, held, doomed, survivor, VERSIONS)
        got = _scores(store, parent)
        assert set(got) == set(expected)  # every (version, language) row, exactly once
        for key, (p, r, f1, support) in expected.items():
            assert got[key][:3] == pytest.approx((p, r, f1), abs=1e-9) and \
                got[key][3] == support, key
        assert [mv.mean_f1 is not None for mv in store.model_versions("p")] == \
            [True] * VERSIONS
    finally:
        store.close()
        drop()


POOL = {"target": 40, "source": 12}
SHARD = 8  # sentences per pool shard: 5 target shards and 2 source shards


def _project_with_a_model(store: Store, tmp_path: Path) -> None:
    """Project ``p`` with pools of :data:`POOL` sentences and one tiny active model."""
    from tiny import make_tiny_bundle

    make_project(store, "p", str(tmp_path / "unused-encoder"), n_source=8, n_dev=8,
                 n_pool=POOL["target"] // len(LANGS), n_source_pool=POOL["source"],
                 targets=LANGS)
    registry = ModelRegistry(store, str(tmp_path / "models"))
    publish_evaluated(store, registry, "p", make_tiny_bundle(tmp_path / "bundles", seed=0),
                      {lang: 0.0 for lang in LANGS})
    assert store.active_model_version("p") is not None


def _pool_ranks(store: Store) -> dict[tuple[str, str], tuple[int, float]]:
    """``(pool, sentence id) -> (rank, score)`` of the active version's predictions of the
    unlabelled pools; fails on a sentence predicted twice or a pool sentence left out."""
    mv = store.active_model_version("p")
    out: dict[tuple[str, str], tuple[int, float]] = {}
    for role, size in POOL.items():
        pool = {x.meta["db_id"]: x.id for x in store.sentences("p", role=role, labelled=False)
                if x.meta["split"] != "dev"}
        rows = [r for r in store.predictions(mv.id) if r.sentence_id in pool]
        assert len(rows) == len({r.sentence_id for r in rows}) == len(pool) == size
        assert sorted(r.al_rank for r in rows) == list(range(1, size + 1))
        out.update({(role, pool[r.sentence_id]): (r.al_rank, r.al_score) for r in rows})
    return out


def _single_worker_sqlite_ranks(tmp_path: Path) -> dict:
    from concner.jobs.predict import execute_predict

    store = Store(f"sqlite:///{tmp_path / 'ref' / 'store.db'}")
    try:
        _project_with_a_model(store, tmp_path / "ref")
        ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "ref" / "models")),
                         load_config(env={}), "single")
        run_id, _ = store.request_run("p", kind="predict")
        assert execute_predict(ctx, "p", run_id) == "succeeded", store.get_run(run_id).error
        assert len(store.shards(run_id)) == 2  # unsharded: one shard per pool
        return _pool_ranks(store)
    finally:
        store.close()


def test_two_workers_share_a_pool_prediction_and_every_sentence_is_scored_once(tmp_path):
    """A pool prediction in 7 shards over two workers, one SIGKILLed holding a shard: every
    pool sentence is in exactly one shard's result and was predicted once (the held
    shard had predicted nothing when its worker died), has exactly one stored prediction,
    and the ranks equal one SQLite worker predicting each pool in one shard."""
    url, drop = fresh_postgres_database(postgres_or_skip())
    expected = _single_worker_sqlite_ranks(tmp_path)
    store = Store(url)
    try:
        _project_with_a_model(store, tmp_path)
        run_id, _ = store.request_run("p", kind="predict")
        held, doomed, survivor = _two_workers_one_killed(
            tmp_path, url, store, "predict", run_id, pool_shard_sentences=str(SHARD))
        run = store.get_run(run_id)
        assert run.status == "succeeded", run.error
        assert run.model_version_id == store.active_model_version("p").id
        _assert_retried_once(store, run_id, held, doomed, survivor, 5 + 2)
        results = [s.result for s in store.shards(run_id)]
        scored = [i for r in results for i in r["db_ids"]]
        assert len(scored) == len(set(scored)) == sum(POOL.values())
        assert sum(r["predicted"] for r in results) == sum(POOL.values())
        got = _pool_ranks(store)
        assert {k: rank for k, (rank, _) in got.items()} == \
            {k: rank for k, (rank, _) in expected.items()}
        assert {k: score for k, (_, score) in got.items()} == \
            pytest.approx({k: score for k, (_, score) in expected.items()}, abs=1e-6)
    finally:
        store.close()
        drop()
