"""The retrain policy never queues a second run with the labels a running retrain is about to
snapshot (the duplicate-retrain race), and never loses labels that arrive while a retrain
takes its snapshot. The worker's store calls are made in the order execute_retrain makes
them, so each interleaving is reproduced deterministically."""

from __future__ import annotations

import pytest
from storekit import BACKENDS, make_project, open_store

from concner.jobs.retrain import maybe_request_retrain
from concner.store import Store
from concner.store.snapshot import take_snapshot

MIN_NEW = 5


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with open_store(request.param, tmp_path) as st:
        make_project(st, "p", "enc", n_source=8, n_dev=2, n_pool=30)
        yield st


def _label(store: Store, n: int, start: int = 0) -> None:
    """An annotator labels ``n`` pool sentences."""
    pool = store.sentences("p", role="target", split="pool")[start:start + n]
    assert len(pool) == n
    for sent in pool:
        store.add_annotation("p", sent.id, ["O"] * len(sent.tokens), author="ann")


def _snapshot(store: Store, run_id: int) -> dict:
    """What execute_retrain does at its start: read the snapshot, then record its counts."""
    snap = take_snapshot(store, "p")
    store.record_snapshot(run_id, label_counts=snap.label_counts, config={}, seed=0)
    return snap.label_counts


def _finish(store: Store, run_id: int) -> int | None:
    """End a retrain as execute_retrain does; returns the queued follow-up run, if any."""
    store.finish_run(run_id, "succeeded")
    return store.release_retrain(run_id)


def test_no_second_run_while_the_running_one_has_not_snapshotted(store):
    first = maybe_request_retrain(store, "p", MIN_NEW)
    assert first is not None and store.acquire_retrain(first, "worker-1")
    # the worker is in its "snapshot" stage: the run is running, its counts not recorded
    assert store.get_run(first).label_counts is None
    assert maybe_request_retrain(store, "p", MIN_NEW) is None  # was: a duplicate run
    counts = _snapshot(store, first)
    assert maybe_request_retrain(store, "p", MIN_NEW) is None  # nothing new since
    assert _finish(store, first) is None
    assert counts["annotations"] == store.annotation_count("p")
    assert [r.id for r in store.runs("p", kind="retrain")] == [first]


def test_labels_arriving_during_the_snapshot_still_trigger_a_run(store):
    first = maybe_request_retrain(store, "p", MIN_NEW)
    assert store.acquire_retrain(first, "worker-1")
    snap = take_snapshot(store, "p")
    _label(store, MIN_NEW)  # committed after the snapshot was read, before it is recorded
    assert maybe_request_retrain(store, "p", MIN_NEW) is None  # deferred, not lost
    store.record_snapshot(first, label_counts=snap.label_counts, config={}, seed=0)
    second = maybe_request_retrain(store, "p", MIN_NEW)
    assert second is not None and second != first
    assert _finish(store, first) == second  # the follow-up the worker starts next
    assert store.acquire_retrain(second, "worker-1")
    counts = _snapshot(store, second)
    assert counts["annotations"] == snap.label_counts["annotations"] + MIN_NEW
    assert counts["target"] == snap.label_counts["target"] + MIN_NEW


def test_a_queued_run_still_absorbs_new_label_requests(store):
    first = maybe_request_retrain(store, "p", MIN_NEW)
    _label(store, MIN_NEW)
    assert maybe_request_retrain(store, "p", MIN_NEW) is None
    assert [r.id for r in store.runs("p", kind="retrain")] == [first]


def test_gold_dev_sentences_are_not_new_training_labels(store):
    """Importing a dev set is evaluated (dev_refresh), not trained on: it must not count
    towards the new-labels retrain; the same number of pool labels does."""
    from storekit import make_sentences

    first = maybe_request_retrain(store, "p", MIN_NEW)
    assert store.acquire_retrain(first, "worker-1")
    _snapshot(store, first)
    _finish(store, first)
    before = store.annotation_count("p")
    store.import_sentences("p", make_sentences("dev-more-", 3 * MIN_NEW, "de", seed=77),
                           role="target", split="dev")
    assert store.annotation_count("p") == before + 3 * MIN_NEW  # they are label versions
    assert maybe_request_retrain(store, "p", MIN_NEW) is None  # was: a full retrain queued
    _label(store, MIN_NEW)
    assert maybe_request_retrain(store, "p", MIN_NEW) is not None


def test_a_snapshot_from_before_training_counts_is_compared_by_the_total(store):
    first = maybe_request_retrain(store, "p", MIN_NEW)
    assert store.acquire_retrain(first, "worker-1")
    counts = _snapshot(store, first)
    old = {k: v for k, v in counts.items() if k != "training_annotations"}
    store.record_snapshot(first, label_counts=old, config={}, seed=0)  # as an old run stored
    _finish(store, first)
    _label(store, MIN_NEW - 1)
    assert maybe_request_retrain(store, "p", MIN_NEW) is None
    _label(store, 1, start=MIN_NEW - 1)
    assert maybe_request_retrain(store, "p", MIN_NEW) is not None
