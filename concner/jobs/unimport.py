"""Undo one import, and what follows from it: when the import held gold dev sentences, the
dev set changed, so every stored model version is evaluated on the new one (one evaluate
job, :func:`concner.jobs.queue.request_evaluate`; the worker's tick would also notice the new
dev set fingerprint, see :mod:`concner.jobs.dev_refresh`, but the user sees the run here)."""

from __future__ import annotations

from concner.errors import ServiceUnavailable
from concner.store import ImportDeletion


def undo_import(store, name: str, batch_id: int) -> tuple[ImportDeletion, str]:
    """Delete import ``batch_id`` of project ``name`` (:meth:`Store.delete_import`); returns
    what went and a sentence on the dev F1 ("" when no dev set changed)."""
    deleted = store.delete_import(name, batch_id)
    return deleted, refresh_dev_scores(store, name, deleted)


def refresh_dev_scores(store, name: str, deleted: ImportDeletion) -> str:
    """Queue the evaluation of every model version when ``deleted`` changed a dev set; say
    what happens to the versions' dev F1."""
    if not deleted.dev_langs:
        return ""
    changed = f"The {', '.join(deleted.dev_langs)} dev set changed"
    if not store.model_versions(name):
        return f"{changed}; there is no model version to evaluate on it yet."
    if store.dev_set(name).empty:
        return (f"{changed} and the project has no dev sentences left: the stored versions "
                "keep their old dev F1 until gold target dev data is imported again.")
    from concner.jobs import queue as tasks

    try:
        run_id = tasks.request_evaluate(store, name, None)
    except ServiceUnavailable as exc:
        return f"{changed}; the evaluation of every model version could not be queued ({exc})."
    return f"{changed}: every model version is evaluated on it again (run {run_id})."
