"""Model versions and their dev F1 for the pages: which dev set each score was computed
on, and queueing an evaluation of one version or of all of them (a worker job:
:func:`concner.jobs.queue.request_evaluate`).

:func:`version_scores` and :func:`scores_frame` are pure reads (tested directly; the
Models page can use them); :func:`start_evaluate` is the buttons' Streamlit side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from concner.errors import ConcnerError
from concner.jobs.dev_refresh import freshness

CURRENT, OLDER, NEVER = "current dev set", "older dev set", "not evaluated"


@dataclass(frozen=True)
class VersionScore:
    """One stored model version's newest dev evaluation. ``dev_state`` is ``CURRENT``
    (computed on today's dev set), ``OLDER`` (on a dev set that has changed since) or
    ``NEVER``; ``evaluated_on`` the dev sentences per language it used."""

    model_version_id: int
    version: int
    active: bool
    mean_f1: float | None
    dev_state: str
    f1_by_lang: dict[str, float] = field(default_factory=dict)
    evaluated_on: dict[str, int] = field(default_factory=dict)
    run_id: int | None = None


def version_scores(store, name: str) -> list[VersionScore]:
    """Every stored (non-deleted) version of ``name``, newest first."""
    dev = store.dev_set(name)
    fresh = freshness(store, name)
    by_run: dict[int, dict[str, float]] = {}
    for m in store.metrics(name):
        if m.split == "dev":
            by_run.setdefault(m.run_id, {})[m.language] = m.f1
    out = []
    for mv in sorted(store.model_versions(name), key=lambda v: -v.version):
        f = fresh[mv.id]
        if f.run_id is None:
            state = NEVER
        else:
            state = CURRENT if f.current(dev.fingerprint) else OLDER
        f1 = by_run.get(f.run_id, {}) if f.run_id is not None else {}
        out.append(VersionScore(mv.id, mv.version, bool(mv.active),
                                sum(f1.values()) / len(f1) if f1 else None, state, dict(f1),
                                f.dev_counts, f.run_id))
    return out


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {lang}" for lang, n in sorted(counts.items()))


def scores_frame(scores: list[VersionScore], dev_counts: dict[str, int]) -> pd.DataFrame:
    """The versions table: version, active, mean dev F1 and F1 per language (percent, "" when
    unknown), and which dev set the scores are on, in words."""
    langs = sorted({lang for s in scores for lang in s.f1_by_lang} | set(dev_counts))
    rows = []
    for s in scores:
        row = {"version": f"v{s.version}", "active": "active" if s.active else "",
               "mean dev F1": "" if s.mean_f1 is None else f"{100 * s.mean_f1:.1f}"}
        for lang in langs:
            f1 = s.f1_by_lang.get(lang)
            row[f"F1 {lang}"] = "" if f1 is None else f"{100 * f1:.1f}"
        if s.dev_state == OLDER:
            was = _counts_text(s.evaluated_on) or "unknown"
            row["scored on"] = f"older dev set ({was}; now {_counts_text(dev_counts) or 'none'})"
        elif s.dev_state == CURRENT:
            row["scored on"] = f"current dev set ({_counts_text(s.evaluated_on)})"
        else:
            row["scored on"] = NEVER
        rows.append(row)
    columns = ["version", "active", "mean dev F1", *[f"F1 {x}" for x in langs], "scored on"]
    return pd.DataFrame(rows, columns=columns)


def start_evaluate(store, project: str, model_version_id: int | None = None,
                   label: str = "every version") -> int | None:
    """Queue an evaluation (of one version, or ``None``: every stored version) on the
    current dev sets and say so; returns the run id (None when it could not be queued)."""
    from concner.jobs import queue as tasks

    if store.dev_set(project).empty:
        st.warning(f"Project {project!r} has no gold dev sentences to evaluate on: import "
                   "them on the Data page, tab \"Gold target dev data\".")
        return None
    try:
        run_id = tasks.request_evaluate(store, project, model_version_id)
    except ConcnerError as exc:
        st.error(str(exc))
        return None
    st.success(f"Evaluation of {label} of {project!r} on the current dev sets queued as run "
               f"{run_id}; the table shows the new F1 when the worker is done.")
    return run_id


def render_versions(store, name: str) -> None:
    """The Overview's model-version table with the evaluate buttons."""
    scores = version_scores(store, name)
    st.subheader("Model versions")
    if not scores:
        st.caption("No model version yet.")
        return
    dev = store.dev_set(name)
    st.dataframe(scores_frame(scores, dev.counts), hide_index=True)
    stale = [s for s in scores if s.dev_state != CURRENT]
    if stale and not dev.empty:
        st.caption(f"{len(stale)} version(s) not scored on the current dev set; the worker "
                   "evaluates every version when the dev set changes.")
    c1, c2 = st.columns([2, 1])
    by_id = {s.model_version_id: s for s in scores}
    picked = c1.selectbox("Version to evaluate", list(by_id),
                          format_func=lambda i: f"v{by_id[i].version}", key=f"eval-pick-{name}")
    if c1.button("Evaluate this version on the current dev sets", key=f"eval-one-{name}"):
        start_evaluate(store, name, picked, label=f"v{by_id[picked].version}")
    if c2.button("Evaluate every version", key=f"eval-all-{name}"):
        start_evaluate(store, name, None)
