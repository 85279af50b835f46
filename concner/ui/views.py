"""Store rows shaped for the pages: counts, metric frames, run tables, benchmark results.

Pure functions over store objects (no Streamlit), so they are tested directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from concner.errors import DataFormatError

#: a worker whose heartbeat is older than this is shown as down
WORKER_FRESH_SECONDS = 60.0


def count_summary(counts: dict[str, Any]) -> dict[str, int]:
    """Headline numbers from ``Store.counts``: labelled source sentences, translations,
    labelled target sentences (gold dev + corrections), unlabelled pool, annotations."""
    out = {"source labels": 0, "translations": 0, "target gold": 0, "target labels": 0,
           "pool": 0, "annotations": int(counts.get("annotations", 0))}
    for row in counts.get("sentences", []):
        role, split, n, lab = row["role"], row["split"], row["sentences"], row["labelled"]
        if role == "source":
            out["source labels"] += lab
        elif role == "translation":
            out["translations"] += n
        elif role == "target":
            if split == "dev":
                out["target gold"] += lab
            else:
                out["target labels"] += lab
                out["pool"] += n - lab
    return out


def per_language_counts(counts: dict[str, Any]) -> pd.DataFrame:
    rows = counts.get("sentences", [])
    if not rows:
        return pd.DataFrame(columns=["role", "split", "lang", "sentences", "labelled"])
    return pd.DataFrame(rows)[["role", "split", "lang", "sentences", "labelled"]]


def metrics_frame(metrics: Sequence[Any], versions: Sequence[Any] = ()) -> pd.DataFrame:
    """One row per metrics row (run, language, split) with the run's label counts and the
    model version number (``versions``: ModelVersion rows, to map ids to numbers)."""
    number = {v.id: v.version for v in versions}
    rows = [{
        "run_id": m.run_id,
        "model_version": number.get(m.model_version_id),
        "language": m.language,
        "split": m.split,
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "support": m.support,
        "n_source": m.n_source,
        "n_translated": m.n_translated,
        "n_target": m.n_target,
    } for m in metrics]
    columns = ["run_id", "model_version", "language", "split", "precision", "recall", "f1",
               "support", "n_source", "n_translated", "n_target"]
    return pd.DataFrame(rows, columns=columns)


def curve_summary(frame: pd.DataFrame) -> str:
    """One line per evaluated run, newest first, for the F1 curve (text twin of the chart):
    ``run 7 · model v3 · labels 24/36/3 · es F1 81.2 · ar F1 40.0``."""
    if frame.empty:
        return ""
    lines = []
    for run_id, group in sorted(frame.groupby("run_id"), key=lambda g: -g[0]):
        first = group.iloc[0]
        version = "-" if pd.isna(first["model_version"]) else f"v{int(first['model_version'])}"
        scores = " · ".join(f"{r.language} F1 {r.f1 * 100:.1f}"
                            for r in group.sort_values("language").itertuples())
        lines.append(f"run {run_id} · model {version} · labels {int(first['n_source'])} source"
                     f" / {int(first['n_translated'])} translated / {int(first['n_target'])} "
                     f"target · {scores}")
    return "\n".join(lines)


def per_label_frame(metrics: Sequence[Any]) -> pd.DataFrame:
    """Per-label F1 rows (``label``, ``language``, ``f1``, ``support``) from metrics rows
    (``per_label`` as written by :func:`concner.evaluation.evaluate`)."""
    rows = []
    for m in metrics:
        for label, rep in sorted((m.per_label or {}).items()):
            rows.append({"label": label, "language": m.language, "f1": float(rep.get("f1", 0.0)),
                         "precision": float(rep.get("precision", 0.0)),
                         "recall": float(rep.get("recall", 0.0)),
                         "support": int(rep.get("support", 0))})
    return pd.DataFrame(rows, columns=["label", "language", "f1", "precision", "recall",
                                       "support"])


def run_progress_text(progress: dict | None) -> str:
    if not progress:
        return ""
    parts = [str(progress.get("stage", ""))]
    if progress.get("epoch") is not None:
        parts.append(f"epoch {progress['epoch']}")
    step, total = progress.get("step"), progress.get("total")
    if step is not None and total:
        parts.append(f"step {step}/{total}")
    if progress.get("loss") is not None:
        parts.append(f"loss {float(progress['loss']):.4f}")
    return " · ".join(p for p in parts if p)


def progress_fraction(progress: dict | None) -> float | None:
    if not progress or not progress.get("total"):
        return None
    return max(0.0, min(1.0, float(progress.get("step", 0)) / float(progress["total"])))


def update_text(run: Any) -> str:
    """How a retrain trained, in a few words: ``full``, ``incremental: 12 new + 200
    replayed`` (``full requested`` while a forced retrain waits); "" for other runs."""
    if getattr(run, "kind", None) != "retrain":
        return ""
    kind = getattr(run, "update_kind", None)
    if kind == "incremental":
        return f"incremental: {run.n_new_labels or 0} new + {run.n_replay or 0} replayed"
    if kind == "full":
        return "full"
    return "full requested" if getattr(run, "force_full", False) else ""


def runs_frame(runs: Sequence[Any]) -> pd.DataFrame:
    rows = []
    for r in runs:
        counts = r.label_counts or {}
        rows.append({
            "run": r.id, "kind": r.kind, "update": update_text(r), "status": r.status,
            "reason": r.reason, "requested": r.requested_at, "started": r.started_at,
            "finished": r.finished_at, "progress": run_progress_text(r.progress),
            "source": counts.get("source"), "translated": counts.get("translated"),
            "target": counts.get("target"), "why": getattr(r, "update_reason", None) or "",
            "error": r.error or "",
        })
    return pd.DataFrame(rows, columns=["run", "kind", "update", "status", "reason",
                                       "requested", "started", "finished", "progress",
                                       "source", "translated", "target", "why", "error"])


def worker_status(workers: Sequence[Any], now: datetime | None = None,
                  fresh_seconds: float = WORKER_FRESH_SECONDS) -> tuple[bool, str]:
    """``(healthy, text)`` from worker heartbeat rows."""
    now = now or datetime.now(UTC)
    alive = [w for w in workers if (now - w.last_seen).total_seconds() <= fresh_seconds
             and w.status != "stopped"]
    if alive:
        w = alive[0]
        age = (now - w.last_seen).total_seconds()
        busy = f", on run {w.current_run_id}" if w.current_run_id else ", idle"
        return True, f"{len(alive)} worker(s) up; last heartbeat {age:.0f} s ago ({w.host}{busy})"
    if workers:
        age = (now - workers[0].last_seen).total_seconds()
        return False, (f"no worker heartbeat for {age:.0f} s; start one with `concner worker`"
                       " (or `concner up`)")
    return False, "no worker has ever started; start one with `concner worker` (or `concner up`)"


def load_benchmark(path: str | Path) -> pd.DataFrame | None:
    """Mean F1 per (system, language) from ``benchmarks/results/quality.json``.

    Accepts a list of rows or ``{"results": [...]}`` whose rows carry ``system``,
    ``lang``/``language`` and ``f1`` (fraction or percent). Returns None when the file does
    not exist; raises :class:`DataFormatError` when it exists but cannot be read.
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"not valid JSON: {exc}", path=str(p)) from None
    rows = data.get("results", data.get("rows")) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise DataFormatError("expected a list of result rows (or {\"results\": [...]})",
                              path=str(p))
    try:
        return load_benchmark_rows(rows)
    except DataFormatError as exc:
        raise DataFormatError(exc.reason, path=str(p)) from None


def load_benchmark_rows(rows: list) -> pd.DataFrame:
    """Mean F1 (percent) and number of runs per (system, language) from result rows."""
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataFormatError(f"row {i} is not an object")
        lang = row.get("language", row.get("lang"))
        f1 = row.get("f1")
        if row.get("system") is None or lang is None or f1 is None:
            raise DataFormatError(f"row {i} lacks system, lang or f1: {sorted(row)}")
        records.append({"system": str(row["system"]), "language": str(lang), "f1": float(f1)})
    if not records:
        return pd.DataFrame(columns=["system", "language", "f1", "n"])
    df = pd.DataFrame(records)
    if df["f1"].max() <= 1.0:
        df["f1"] = df["f1"] * 100
    return df.groupby(["system", "language"], as_index=False).agg(
        f1=("f1", "mean"), n=("f1", "size"))
