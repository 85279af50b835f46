"""Pin, roll back and unpin a project's model version, then refresh its suggestions.

The Models page and ``concner model pin/rollback/unpin`` call these. When the active
version changes, a pool prediction is queued exactly as after a promotion
(:func:`concner.jobs.queue.request_predict`; its end queues the Argilla sync), so the review
order and the suggestions come from the newly active version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from concner.errors import ServiceUnavailable
from concner.store.model_versions import ModelVersion

#: ``queue_prediction(store, project) -> run id``
QueuePrediction = Callable[[object, str], int]


@dataclass(frozen=True)
class Switched:
    """What a pin or rollback did: the version now active and pinned, whether the active
    version changed, the pool prediction queued for it (None when it did not change), and
    the outcome in words."""

    version: ModelVersion
    changed: bool
    predict_run_id: int | None
    message: str


def _queue_prediction(store, project: str) -> int:
    from concner.jobs import queue as tasks

    return tasks.request_predict(store, project)


def pin(store, registry, project: str, version: int, *,
        queue_prediction: QueuePrediction = _queue_prediction) -> Switched:
    """Make ``version`` active and pinned (see :meth:`ModelRegistry.pin`)."""
    before = store.active_model_version(project)
    return _switched(store, project, before, registry.pin(project, version), queue_prediction)


def roll_back(store, registry, project: str, version: int | None = None, *,
              queue_prediction: QueuePrediction = _queue_prediction) -> Switched:
    """Pin an older version (default: the newest older one kept)."""
    before = store.active_model_version(project)
    return _switched(store, project, before, registry.rollback(project, version),
                     queue_prediction)


def unpin(registry, project: str) -> str:
    """Return to the promotion rule; says what stays active."""
    was = registry.unpin(project)
    if was is None:
        return f"No version of {project} was pinned; the promotion rule decides."
    return (f"v{was.version} is no longer pinned: it stays active until a new version passes "
            "the promotion rule.")


def _switched(store, project: str, before: ModelVersion | None, now: ModelVersion,
              queue_prediction: QueuePrediction) -> Switched:
    changed = before is None or before.id != now.id
    run_id, queued = None, ""
    if changed:
        try:
            run_id = queue_prediction(store, project)
            queued = f" Pool prediction with v{now.version} queued as run {run_id}."
        except ServiceUnavailable as exc:  # the pin holds; only the refresh has to wait
            queued = (f" The pool prediction with v{now.version} could not be queued ({exc});"
                      " queue one when the queue is back.")
    if changed:
        came = "" if before is None else f" instead of v{before.version}"
        message = (f"v{now.version} is active{came} and pinned: new versions are stored and "
                   f"evaluated but not promoted until you unpin it.{queued}")
    else:
        message = (f"v{now.version} was already active; it is pinned now: new versions are "
                   "stored and evaluated but not promoted until you unpin it.")
    return Switched(now, changed, run_id, message)
