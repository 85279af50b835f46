"""Shards in the store (concner/store/shards.py) on SQLite and PostgreSQL: handing a run's
work to shards, claiming them (never the same shard twice, also under a race of threads),
finishing once, giving a lost worker's shards back, failing after MAX_ATTEMPTS, and exactly
one completion per run."""

from __future__ import annotations

import threading

import pytest
from storekit import BACKENDS, open_store

from concner.errors import ShardFailed
from concner.store.shards import MAX_ATTEMPTS, SHARDED_OWNER


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with open_store(request.param, tmp_path) as st:
        st.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                          encoder="enc", training_config={})
        yield st


def started_run(store, owner: str = "starter") -> int:
    run_id, _ = store.request_run("p", kind="evaluate")
    assert store.start_run(run_id, owner)
    return run_id


def test_handing_out_is_idempotent_and_the_run_is_no_single_workers_any_more(store):
    run_id = started_run(store)
    assert store.hand_to_shards(run_id, "k", [{"n": i} for i in range(3)]) == 3
    assert store.hand_to_shards(run_id, "k", [{"n": 9}]) == 3  # a second hand-out adds nothing
    assert [(s.index, s.payload, s.state, s.attempts) for s in store.shards(run_id)] == \
        [(0, {"n": 0}, "queued", 0), (1, {"n": 1}, "queued", 0), (2, {"n": 2}, "queued", 0)]
    assert store.get_run(run_id).worker_id == SHARDED_OWNER
    assert store.idle_sharded_runs() == [run_id]  # nobody has claimed a shard yet
    assert store.idle_sharded_runs(older_than=3600) == []  # but it was handed out just now
    # the recovery of orphaned runs no longer sees the worker that started it
    assert store.recover_orphaned_jobs({"starter"}) == []


def test_claim_finish_and_a_second_finish_is_refused(store):
    run_id = started_run(store)
    store.hand_to_shards(run_id, "k", [{"n": 0}, {"n": 1}])
    first = store.claim_shard(run_id, "w1")
    second = store.claim_shard(run_id, "w2")
    assert (first.index, second.index, first.attempts) == (0, 1, 1)
    assert store.claim_shard(run_id, "w3") is None  # nothing queued
    assert not store.finish_shard(first.id, "w2", {"r": "x"})  # not w2's shard
    assert store.finish_shard(first.id, "w1", {"r": 0})
    assert not store.finish_shard(first.id, "w1", {"r": "again"})  # no double counting
    assert store.take_completion(run_id, "w1") is None  # shard 1 is still held
    assert store.finish_shard(second.id, "w2", {"r": 1})
    assert [s.result for s in store.shards(run_id)] == [{"r": 0}, {"r": 1}]
    assert store.take_completion(run_id, "w2") == "complete"
    assert store.take_completion(run_id, "w1") is None  # taken once


def test_no_claim_once_the_run_is_cancelled_and_the_cancel_ends_it_once(store):
    run_id = started_run(store)
    store.hand_to_shards(run_id, "k", [{"n": 0}, {"n": 1}])
    held = store.claim_shard(run_id, "w1")
    assert store.cancel_run(run_id) == "running"
    assert store.claim_shard(run_id, "w2") is None
    assert store.take_completion(run_id, "w2") is None  # w1 still holds a shard
    assert store.finish_shard(held.id, "w1", {})
    assert store.take_completion(run_id, "w1") == "cancel"
    assert store.take_completion(run_id, "w2") is None


def test_a_lost_workers_shard_is_retried_then_fails_naming_the_shard(store):
    run_id = started_run(store)
    store.hand_to_shards(run_id, "k", [{"n": 0}, {"n": 1}])
    for attempt in range(1, MAX_ATTEMPTS):
        shard = store.claim_shard(run_id, f"dead{attempt}")
        assert (shard.index, shard.attempts) == (0, attempt)
        released = store.release_lost_shards({f"dead{attempt}", "other"})
        assert released.requeued_runs == [run_id] and released.failed == []
        (row, _) = store.shards(run_id)
        assert (row.state, row.owner, row.attempts) == ("queued", None, attempt)
        assert f"dead{attempt}" in row.error
    last = store.claim_shard(run_id, "dead-last")
    assert last.attempts == MAX_ATTEMPTS
    assert store.release_lost_shards({"nobody"}).requeued_runs == []  # not the holder
    released = store.release_lost_shards({"dead-last"})
    (failed,) = released.failed
    assert isinstance(failed, ShardFailed) and released.requeued_runs == []
    assert (failed.run_id, failed.index) == (run_id, 0)
    assert f"shard 0 (id {last.id}, k) of run {run_id} failed {MAX_ATTEMPTS} times" in str(failed)
    assert store.shards(run_id)[0].state == "failed"
    assert not store.finish_shard(last.id, "dead-last", {})  # a late finish is refused


def test_a_failed_attempt_and_a_stop_give_the_shard_back(store):
    run_id = started_run(store)
    store.hand_to_shards(run_id, "k", [{"n": 0}])
    shard = store.claim_shard(run_id, "w")
    assert store.release_shard(shard.id, "w")  # the worker stops: not an attempt
    assert store.shards(run_id)[0].attempts == 0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        shard = store.claim_shard(run_id, "w")
        gave_up = store.retry_shard(shard.id, "w", f"boom {attempt}")
        assert (gave_up is None) == (attempt < MAX_ATTEMPTS)
    assert "boom 3" in str(gave_up) and store.claim_shard(run_id, "w") is None


def test_a_completion_taken_by_a_lost_worker_is_given_up_and_taken_again(store):
    run_id = started_run(store)
    store.hand_to_shards(run_id, "k", [{"n": 0}])
    shard = store.claim_shard(run_id, "w1")
    assert store.idle_sharded_runs() == []  # a shard is held
    store.finish_shard(shard.id, "w1", {})
    assert store.idle_sharded_runs() == [run_id]  # done, and nobody took the completion
    assert store.idle_sharded_runs(older_than=3600) == []  # it finished just now
    assert store.take_completion(run_id, "w1") == "complete"
    assert store.idle_sharded_runs() == []
    assert store.release_lost_shards({"w1"}).requeued_runs == [run_id]
    assert store.take_completion(run_id, "w2") == "complete"
    store.finish_run(run_id, "succeeded")
    assert store.release_lost_shards({"w2"}).requeued_runs == []  # the run is over


def test_racing_claimers_never_get_the_same_shard(store):
    run_id = started_run(store)
    n_shards, n_threads = 40, 4
    store.hand_to_shards(run_id, "k", [{"n": i} for i in range(n_shards)])
    claimed: dict[str, list[int]] = {f"w{k}": [] for k in range(n_threads)}
    start = threading.Barrier(n_threads)
    errors = []

    def claimer(owner: str) -> None:
        try:
            start.wait()
            while (shard := store.claim_shard(run_id, owner)) is not None:
                claimed[owner].append(shard.index)
                assert store.finish_shard(shard.id, owner, {"by": owner})
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread's owner
            errors.append((owner, exc))

    threads = [threading.Thread(target=claimer, args=(owner,)) for owner in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    every = [i for got in claimed.values() for i in got]
    assert sorted(every) == list(range(n_shards))  # each exactly once
    rows = store.shards(run_id)
    assert all(r.state == "done" and r.attempts == 1 and r.result == {"by": r.owner}
               for r in rows)
    assert {r.index for r in rows if r.owner == "w0"} == set(claimed["w0"])
