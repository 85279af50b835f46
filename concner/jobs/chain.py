"""What a finished job queues next in the worker: the job chain, written once.

    retrain --(its model is promoted)--> predict_pool --(finished)--> sync

- a promotion queues a pool prediction: the new active model predicts the pool and
  scores it with ``active.strategy``;
- a finished pool prediction queues a sync (when a sync hook is registered), so Argilla
  gets the new model's suggestions in the new active-learning order;
- a retrain that ends with a request coalesced behind it queues that run.

The jobs call these through their :class:`concner.jobs.context.JobContext`'s callbacks
(``after_promotion``, ``after_predict``, ``enqueue_retrain``); the worker's context takes
them from :meth:`WorkerChain.callbacks`, built over the queue's ways to queue each job
(:func:`concner.jobs.queue.worker_chain`). A context built by hand (tests) follows up with
nothing unless it is given callbacks of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerChain:
    """The chain above, over how the queue queues each job."""

    #: ``queue_retrain(project, run_id)``: put queued retrain run ``run_id`` on the queue
    queue_retrain: Callable[[str, int], None]
    #: ``queue_predict(project)``: queue a pool prediction with the active model
    queue_predict: Callable[[str], None]
    #: ``queue_sync(project)``: queue a sync of the project
    queue_sync: Callable[[str], None]
    #: whether a sync hook is registered (without one a sync has nothing to do)
    can_sync: Callable[[], bool]

    def after_promotion(self, project: str) -> None:
        """A new model became active: predict and score the pool with it first."""
        self.queue_predict(project)

    def after_predict(self, project: str) -> None:
        """The active model predicted the pool: sync (new suggestions, new order)."""
        if self.can_sync():
            self.queue_sync(project)

    def callbacks(self) -> dict[str, Callable]:
        """The :class:`concner.jobs.context.JobContext` callbacks that follow this chain."""
        return {"enqueue_retrain": self.queue_retrain, "after_promotion": self.after_promotion,
                "after_predict": self.after_predict}
