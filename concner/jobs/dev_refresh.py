"""Every stored model version gets F1 on the current dev set.

When gold target dev sentences arrive, are deleted or relabelled, the project's dev set
fingerprint (:class:`concner.store.DevSet`) changes. A version's F1 is *current* when its
newest dev metrics were computed on the dev set with today's fingerprint (each metrics
row's run records the ``dev_fingerprint`` it evaluated on, in ``label_counts``).

:func:`maybe_request_dev_evaluation` (the worker's tick calls it for every project) queues
ONE evaluate run covering every stored version when some version is not current, and
nothing when there is no dev set, no stale version, or the latest evaluation of every
version is queued, running, or was made for this very dev set (it failed or was
cancelled: the tick does not retry it forever; the Overview's button does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("concner.jobs.dev_refresh")
#: reason recorded on the evaluate runs this module queues
REASON = "dev_changed"


@dataclass(frozen=True)
class VersionFreshness:
    """Where a version's newest dev F1 comes from: the run, its dev set and counts."""

    model_version_id: int
    run_id: int | None
    dev_fingerprint: str | None
    dev_counts: dict

    def current(self, fingerprint: str) -> bool:
        return self.run_id is not None and self.dev_fingerprint == fingerprint


def freshness(store, name: str) -> dict[int, VersionFreshness]:
    """``{model version id: VersionFreshness}`` of every stored version of ``name``."""
    counts = store.run_label_counts(name)
    newest: dict[int, int] = {}
    for m in store.metrics(name):
        if m.split == "dev" and m.model_version_id is not None:
            newest[m.model_version_id] = max(m.run_id, newest.get(m.model_version_id, 0))
    out = {}
    for mv in store.model_versions(name):
        run_id = newest.get(mv.id)
        seen = counts.get(run_id, {}) if run_id is not None else {}
        out[mv.id] = VersionFreshness(mv.id, run_id, seen.get("dev_fingerprint"),
                                      dict(seen.get("dev_by_lang") or {}))
    return out


def stale_versions(store, name: str, fingerprint: str) -> list[int]:
    """Ids of the stored versions whose F1 is not on the dev set ``fingerprint``."""
    return [mv_id for mv_id, f in freshness(store, name).items() if not f.current(fingerprint)]


def _tried(store, name: str, fingerprint: str) -> int | None:
    """The latest evaluation of every version, when it is queued or running, or was made
    for this very dev set (it failed or was cancelled if versions are still stale)."""
    for run in store.runs(name, kind="evaluate", limit=200):
        if run.model_version_id is not None or (run.config or {}).get("part_of"):
            continue
        if run.status in ("queued", "running") or \
                (run.config or {}).get("dev_fingerprint") == fingerprint:
            return run.id
        return None
    return None


def maybe_request_dev_evaluation(store, name: str) -> int | None:
    """Queue (in the store) one evaluate run of every stored version of ``name`` when the
    dev set changed since some version's F1; returns the new run's id, or None."""
    dev = store.dev_set(name)
    if dev.empty:
        return None
    stale = stale_versions(store, name, dev.fingerprint)
    if not stale or _tried(store, name, dev.fingerprint) is not None:
        return None
    run_id, created = store.request_evaluation(
        name, None, reason=REASON, config={"dev_fingerprint": dev.fingerprint,
                                           "dev_by_lang": dev.counts})
    if created:
        log.info("dev set of %r is now %s (%s): evaluating every model version (%d not on it) "
                 "in run %s", name, dev.fingerprint,
                 ", ".join(f"{n} {lang}" for lang, n in dev.counts.items()), len(stale), run_id)
        return run_id
    return None
