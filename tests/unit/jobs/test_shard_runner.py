"""The shard runner (concner/jobs/shards.py) with a small real work kind other than
evaluation: scoring the project's pool sentences in chunks (the shape pool prediction will
take). Two workers share one run and every sentence is scored exactly once; a failed
attempt is retried; a shard that keeps failing fails the run naming it; a lost worker's
shard goes back on the queue through the tick's path and is done by another worker."""

from __future__ import annotations

import threading

import pytest
from storekit import BACKENDS, make_project, open_store

from concner.config import load_config
from concner.jobs import queue as tasks
from concner.jobs.context import JobContext
from concner.jobs.registry import ModelRegistry
from concner.jobs.shards import ShardWork, hand_out, register_work, run_shards
from concner.store.shards import MAX_ATTEMPTS

CHUNK = 4


def chunk_pool(ctx, run) -> list[dict]:
    """One shard per CHUNK pool sentences (their store ids)."""
    ids = [s.id for s in ctx.store.sentences("p", split="pool")]
    return [{"ids": ids[i:i + CHUNK]} for i in range(0, len(ids), CHUNK)]


def score_chunk(ctx, run, payload) -> dict:
    """A sentence's score: its number of tokens, read from the store."""
    by_id = {s.id: s for s in ctx.store.sentences("p", split="pool")}
    return {"scores": {str(i): len(by_id[i].tokens) for i in payload["ids"]}}


def record_scores(ctx, run, results) -> None:
    """Every sentence's score into the run's label counts, with how often it was scored."""
    seen: dict[str, int] = {}
    scores: dict[str, int] = {}
    for res in results:
        for sid, score in res["scores"].items():
            seen[sid] = seen.get(sid, 0) + 1
            scores[sid] = score
    ctx.store.record_snapshot(run.id, label_counts={"scores": scores, "seen": seen},
                              config={}, seed=0)


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with open_store(request.param, tmp_path) as st:
        make_project(st, "p", "enc", n_source=4, n_dev=2, n_pool=22)
        yield st


def context(store, tmp_path, owner: str, queued: list | None = None) -> JobContext:
    return JobContext(store, ModelRegistry(store, str(tmp_path / "models")),
                      load_config(env={}), owner,
                      enqueue_shards=None if queued is None else queued.append)


def started(store, ctx) -> int:
    run_id, _ = store.request_run("p", kind="predict")
    assert store.start_run(run_id, ctx.owner)
    return run_id


def test_two_workers_share_a_run_and_every_sentence_is_scored_once(store, tmp_path):
    both_hold_one = threading.Barrier(2, timeout=60)
    first_of: set[str] = set()

    def score_together(ctx, run, payload):
        if ctx.owner not in first_of:  # each worker's first shard waits for the other's
            first_of.add(ctx.owner)
            both_hold_one.wait()
        return score_chunk(ctx, run, payload)

    register_work("test-pool-score", ShardWork(chunk_pool, score_together, record_scores))
    queued: list[int] = []
    w1, w2 = context(store, tmp_path, "w1", queued), context(store, tmp_path, "w2")
    run_id = started(store, w1)
    assert hand_out(w1, run_id, "test-pool-score") == "running"
    assert queued == [run_id, run_id]  # services.shard_workers runners, nothing run yet
    said = {}
    threads = [threading.Thread(target=lambda c=c: said.update({c.owner: run_shards(c, run_id)}))
               for c in (w1, w2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    run = store.get_run(run_id)
    assert run.status == "succeeded", run.error
    pool = store.sentences("p", split="pool")
    assert run.label_counts["seen"] == {str(s.id): 1 for s in pool}
    assert run.label_counts["scores"] == {str(s.id): len(s.tokens) for s in pool}
    shards = store.shards(run_id)
    assert len(shards) == 6 and all(s.state == "done" and s.attempts == 1 for s in shards)
    assert {s.owner for s in shards} == {"w1", "w2"}
    assert sorted(v.split(";")[1].strip() for v in said.values()) == ["completed", "waiting"]


def test_a_failed_attempt_is_retried_and_a_shard_that_keeps_failing_fails_the_run(
        store, tmp_path):
    tries: list[dict] = []

    def flaky(ctx, run, payload):
        tries.append(payload)
        if payload == chunks[1] and tries.count(payload) == 1:
            raise RuntimeError("lost the connection")
        return score_chunk(ctx, run, payload)

    ctx = context(store, tmp_path, "w")
    chunks = chunk_pool(ctx, None)
    register_work("test-flaky", ShardWork(chunk_pool, flaky, record_scores))
    run_id = started(store, ctx)
    assert hand_out(ctx, run_id, "test-flaky") == "succeeded"  # no queue: ran here
    assert [s.attempts for s in store.shards(run_id)] == [1, 2, 1, 1, 1, 1]
    assert store.shards(run_id)[1].error == "RuntimeError: lost the connection"  # kept
    assert store.shards(run_id)[0].error is None
    assert set(store.get_run(run_id).label_counts["seen"].values()) == {1}

    def broken(ctx, run, payload):
        if payload == chunks[2]:
            raise RuntimeError("always")
        return score_chunk(ctx, run, payload)

    register_work("test-broken", ShardWork(chunk_pool, broken, record_scores))
    run_id = started(store, ctx)
    assert hand_out(ctx, run_id, "test-broken") == "failed"
    run = store.get_run(run_id)
    assert f"shard 2 (id {store.shards(run_id)[2].id}, test-broken) of run {run_id} failed " \
           f"{MAX_ATTEMPTS} times; last: RuntimeError: always" in run.error
    assert run.label_counts is None  # the completion never ran


def test_hand_out_options_reach_prepare_every_shard_and_the_completion(store, tmp_path):
    """Options given to hand_out are on the run's config before prepare runs; what prepare
    pins there is what every shard and the completion read (a shard's payload need not
    carry it)."""
    seen: list = []

    def cut_by_option(ctx, run):
        width = run.config["width"]
        ctx.store.merge_run_config(run.id, {"pinned": {"width": width, "by": "prepare"}})
        ids = [s.id for s in ctx.store.sentences("p", split="pool")]
        return [{"ids": ids[i:i + width]} for i in range(0, len(ids), width)]

    def score_pinned(ctx, run, payload):
        seen.append(("shard", run.config["pinned"]))
        return score_chunk(ctx, run, payload)

    def complete(ctx, run, results):
        seen.append(("complete", run.config["pinned"]))
        assert run.config["width"] == 11  # the option is still there beside what was pinned
        record_scores(ctx, run, results)

    ctx = context(store, tmp_path, "w")
    register_work("test-options", ShardWork(cut_by_option, score_pinned, complete))
    run_id = started(store, ctx)
    assert hand_out(ctx, run_id, "test-options", {"width": 11}) == "succeeded"
    assert len(store.shards(run_id)) == 2  # 22 pool sentences in shards of 11
    assert all("by" not in shard.payload for shard in store.shards(run_id))
    assert seen == [("shard", {"width": 11, "by": "prepare"})] * 2 + [
        ("complete", {"width": 11, "by": "prepare"})]
    assert len(store.get_run(run_id).label_counts["seen"]) == 22


def test_a_lost_workers_shard_is_requeued_by_the_tick_and_done_by_another(
        store, tmp_path, monkeypatch):
    register_work("test-pool-score", ShardWork(chunk_pool, score_chunk, record_scores))
    queued: list[int] = []
    survivor = context(store, tmp_path, "survivor", queued)
    run_id = started(store, survivor)
    hand_out(survivor, run_id, "test-pool-score")
    lost = store.claim_shard(run_id, "killed-worker")  # then its process died
    assert run_shards(survivor, run_id).endswith("waiting")  # one shard is still held
    assert store.get_run(run_id).status == "running"

    enqueued = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: enqueued.append((task.name, *args)))
    assert tasks.requeue_shards(store, {"killed-worker"}, 60) == 1
    assert enqueued == [("run_shards", run_id)]
    assert run_shards(survivor, run_id) == "done 1; completed"
    assert store.get_run(run_id).status == "succeeded"
    again = next(s for s in store.shards(run_id) if s.id == lost.id)
    assert (again.attempts, again.owner, again.state) == (2, "survivor", "done")
    assert set(store.get_run(run_id).label_counts["seen"].values()) == {1}
    assert tasks.requeue_shards(store, {"killed-worker"}, 0) == 0  # nothing left to wake


def test_an_idle_run_is_woken_once_per_idle_period_not_on_every_heartbeat(monkeypatch):
    from concner.store.shards import ReleasedShards

    class AlwaysIdle:  # a run whose shards wait while every worker is busy elsewhere
        def release_lost_shards(self, lost):
            return ReleasedShards([], [])

        def idle_sharded_runs(self, older_than):
            return [10**9]

    enqueued = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: enqueued.append(args))
    assert tasks.requeue_shards(AlwaysIdle(), set(), 30) == 1
    assert tasks.requeue_shards(AlwaysIdle(), set(), 30) == 0  # the next heartbeat
    assert enqueued == [(10**9,)]


def test_a_stale_queued_run_is_requeued_once_per_stale_period_not_on_every_heartbeat(
        store, tmp_path, monkeypatch):
    """A queued prediction whose message may be lost is put back on the queue by the tick,
    but not again on the next heartbeat while it still waits behind busy workers."""
    enqueued = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: enqueued.append((task.name, *args)))
    monkeypatch.setitem(tasks._process, "woken", {})  # run ids of earlier tests' stores
    ctx = context(store, tmp_path, "busy-worker")
    run_id, _ = store.request_run("p", kind="predict")
    monkeypatch.setattr(store, "stale_queued_jobs", lambda older_than: [
        ("p", run_id, "predict", None)])  # older than lock_stale_seconds
    tasks.tick(ctx)
    tasks.tick(ctx)  # the next heartbeat
    assert enqueued.count(("predict_pool", "p", run_id)) == 1
    monkeypatch.setattr(tasks.time, "monotonic", lambda: 10**9)  # a stale period later
    tasks.tick(ctx)
    assert enqueued.count(("predict_pool", "p", run_id)) == 2
