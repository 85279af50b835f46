"""Automatic retraining: may the worker queue a retrain of a project by itself now?

The worker's tick asks :func:`auto_retrain` for every project. It queues nothing when the
project's switch is off (``projects.auto_retrain``: the Overview's "Automatic retraining"
toggle, ``concner project auto-retrain NAME on|off``) or the project is not ready
(:mod:`concner.jobs.readiness`); otherwise the new-labels policy decides
(:func:`concner.jobs.retrain.maybe_request_retrain`). Each decision is said in words
(:class:`AutoDecision`), and logged when it changes, so the worker log tells why a project
is not retraining. On-demand retrains (buttons, ``concner retrain``) never come here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from concner.jobs.readiness import project_readiness

log = logging.getLogger("concner.jobs.autoretrain")
_last_said: dict[str, str] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class AutoDecision:
    """``run_id``: the retrain queued now (None: nothing queued); ``why``: in words."""

    run_id: int | None
    why: str


def decide(store, name: str, config) -> AutoDecision:
    """Apply the switch, the readiness rule and the new-labels policy to project ``name``
    (``config``: the worker's base configuration)."""
    from concner.jobs.retrain import maybe_request_retrain

    if not store.get_project(name).auto_retrain:
        return AutoDecision(None, f"automatic retraining of {name!r} is off (Overview: "
                                  f"\"Automatic retraining\", or concner project auto-retrain "
                                  f"{name} on)")
    readiness = project_readiness(store, name, config)
    if not readiness.ready:
        return AutoDecision(None, f"automatic retraining of {name!r} waits, {readiness.summary()}")
    need = config.services.retrain_min_new_labels
    run_id = maybe_request_retrain(store, name, need)
    if run_id is None:
        return AutoDecision(None, f"{name!r} is ready; the next automatic retrain starts when "
                                  f"{need} new labels arrived since the last one")
    return AutoDecision(run_id, f"{name!r} is ready and has {need}+ new labels: queued "
                                f"retrain run {run_id}")


def auto_retrain(store, name: str, config) -> int | None:
    """:func:`decide`, logging the decision when it differs from the last one for ``name``;
    returns the id of a newly queued retrain, or None."""
    decision = decide(store, name, config)
    with _lock:
        changed = _last_said.get(name) != decision.why
        _last_said[name] = decision.why
    if changed or decision.run_id is not None:
        log.info(decision.why)
    return decision.run_id
