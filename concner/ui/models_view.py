"""The Models page's tables: every model version of a project side by side.

Pure functions over store rows (no Streamlit), unit-tested. Every cell is text: a value
that is missing says why in words ("not evaluated", "not recorded"), never None or NaN.
F1 values are stored as fractions and shown in points (percent, one decimal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from concner.ui.views import promotion_text

NOT_EVALUATED = "not evaluated"
NOT_RECORDED = "not recorded"


def latest_dev_metrics(metrics: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """``{model version id: {language: metrics row}}`` of dev metrics, the newest row per
    language (a later evaluation of a version supersedes the one made when it was
    trained)."""
    out: dict[int, dict[str, Any]] = {}
    for m in sorted(metrics, key=lambda m: (m.run_id, m.id or 0)):
        if m.split == "dev" and m.model_version_id is not None:
            out.setdefault(m.model_version_id, {})[m.language] = m
    return out


def _f1(value: float | None) -> str:
    return NOT_EVALUATED if value is None else f"{100 * value:.1f}"


def _difference(value: float | None, active: float | None, is_active: bool,
                has_active: bool) -> str:
    if is_active:
        return "active"
    if not has_active:
        return "no active version"
    if value is None:
        return NOT_EVALUATED
    if active is None:
        return "active not evaluated"
    return f"{100 * (value - active):+.1f}"


def state_text(version: Any, pinned_id: int | None) -> str:
    """``active, pinned`` / ``active`` / ``was active`` / ``not promoted`` (``, files
    pruned`` when its checkpoint was deleted)."""
    if version.active:
        text = "active, pinned" if version.id == pinned_id else "active"
    else:
        text = "was active" if version.promoted else "not promoted"
    return text + (", files pruned" if version.deleted_at is not None else "")


def decision_text(version: Any, run: Any | None, pinned_id: int | None) -> str:
    """Why the version is where it is: the registry's decision when it was made (what the
    run recorded) and, for the pinned one, that the user pinned it."""
    made = promotion_text(run, version) if run is not None else ""
    if version.active and version.id == pinned_id:
        made = made.replace("promoted (active)", "promoted")
        return "pinned: stays active until unpinned" + (f"; when made: {made}" if made else "")
    return made or "no run recorded its promotion decision"


def training_counts(run: Any | None, rows: Mapping[str, Any]) -> str:
    """``S source / T translated / G target`` labelled sentences the version trained on:
    from its run's ``label_counts``, else from its metrics rows' ``n_*`` columns."""
    counts = (getattr(run, "label_counts", None) or {}) if run is not None else {}
    if counts:
        return (f"{counts.get('source', 0)} source / {counts.get('translated', 0)} translated"
                f" / {counts.get('target', 0)} target")
    if rows:
        m = next(iter(rows.values()))
        return f"{m.n_source} source / {m.n_translated} translated / {m.n_target} target"
    return NOT_RECORDED


def versions_frame(versions: Sequence[Any], metrics: Sequence[Any],
                   runs: Mapping[int, Any], languages: Sequence[str],
                   pinned_id: int | None = None,
                   scored_on: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per model version, newest first: its state and why, mean and per-language
    dev F1 with the difference to the active version (F1 points), which dev set the F1 is
    on (``scored_on``: ``"vN"`` -> words, from :func:`concner.ui.evaluations.scores_frame`),
    the labelled sentences it trained on, its folder and when it was made. ``runs``: run
    id -> run row."""
    by_version = latest_dev_metrics(metrics)
    active = next((v for v in versions if v.active), None)
    active_rows = by_version.get(active.id, {}) if active is not None else {}
    rows = []
    for v in sorted(versions, key=lambda v: -v.version):
        own = by_version.get(v.id, {})
        run = runs.get(v.run_id) if v.run_id is not None else None
        is_active = active is not None and v.id == active.id
        row = {"version": f"v{v.version}", "state": state_text(v, pinned_id),
               "why": decision_text(v, run, pinned_id), "mean dev F1": _f1(v.mean_f1),
               "mean vs active": _difference(v.mean_f1, getattr(active, "mean_f1", None),
                                             is_active, active is not None)}
        for lang in languages:
            mine = own[lang].f1 if lang in own else None
            theirs = active_rows[lang].f1 if lang in active_rows else None
            row[f"{lang} F1"] = _f1(mine)
            row[f"{lang} vs active"] = _difference(mine, theirs, is_active, active is not None)
        row.update({"scored on": (scored_on or {}).get(f"v{v.version}") or NOT_RECORDED,
                    "trained on": training_counts(run, own), "folder": v.path,
                    "made": f"{v.created_at:%Y-%m-%d %H:%M}"})
        rows.append(row)
    columns = ["version", "state", "why", "mean dev F1", "mean vs active"]
    columns += [c for lang in languages for c in (f"{lang} F1", f"{lang} vs active")]
    return pd.DataFrame(rows, columns=columns + ["scored on", "trained on", "folder", "made"])


def per_label_frame(versions: Sequence[Any], metrics: Sequence[Any],
                    languages: Sequence[str]) -> pd.DataFrame:
    """Per-label dev F1 side by side: one row per (language, label), one column per
    version (newest first); a cell is ``F1`` for the active version and ``F1 (+d)`` for
    the others, ``d`` the difference to the active version's F1 on that label."""
    by_version = latest_dev_metrics(metrics)
    ordered = sorted(versions, key=lambda v: -v.version)
    active = next((v for v in versions if v.active), None)

    def label_f1(version, lang: str, label: str) -> float | None:
        row = by_version.get(version.id, {}).get(lang)
        rep = (row.per_label or {}).get(label) if row is not None else None
        return None if rep is None else float(rep.get("f1", 0.0))

    labels = sorted({label for rows in by_version.values() for m in rows.values()
                     for label in (m.per_label or {})})
    rows = []
    for lang in languages:
        for label in labels:
            row = {"language": lang, "label": label}
            base = label_f1(active, lang, label) if active is not None else None
            for v in ordered:
                value = label_f1(v, lang, label)
                cell = _f1(value)
                if value is not None and base is not None and v.id != active.id:
                    cell += f" ({100 * (value - base):+.1f})"
                row[f"v{v.version}"] = cell
            rows.append(row)
    return pd.DataFrame(rows, columns=["language", "label"] + [f"v{v.version}" for v in ordered])
