"""The job chain (concner/jobs/chain.py)."""

from __future__ import annotations

from concner.jobs.chain import WorkerChain


def test_the_chain_queues_a_prediction_on_promotion_and_a_sync_after_it():
    queued: list[tuple] = []
    hooks: list[str] = []
    chain = WorkerChain(queue_retrain=lambda project, run_id: queued.append(("retrain", run_id)),
                        queue_predict=lambda project: queued.append(("predict", project)),
                        queue_sync=lambda project: queued.append(("sync", project)),
                        can_sync=lambda: bool(hooks))
    callbacks = chain.callbacks()
    callbacks["after_promotion"]("p")
    callbacks["after_predict"]("p")  # no sync hook registered: nothing to sync
    hooks.append("argilla")
    callbacks["after_predict"]("p")
    callbacks["enqueue_retrain"]("p", 7)
    assert queued == [("predict", "p"), ("sync", "p"), ("retrain", 7)]
