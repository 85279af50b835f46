"""Store rows shaped for the pages: counts, metric frames, run tables, benchmark results.

Pure functions over store objects (no Streamlit), so they are tested directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
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


def target_labels_of(counts: dict | None, language: str, n_target: int) -> int | None:
    """Labelled target sentences (outside dev) in ``language`` a run trained on, from its
    ``label_counts`` (``target_by_lang``); 0 for a language without any. Without per-language
    counts: 0 when the run saw no target labels at all, else unknown (None)."""
    by_lang = (counts or {}).get("target_by_lang")
    if isinstance(by_lang, dict):
        return int(by_lang.get(language, 0))
    return 0 if not n_target else None


def metrics_frame(metrics: Sequence[Any], versions: Sequence[Any] = (),
                  label_counts: dict[int, dict] | None = None) -> pd.DataFrame:
    """One row per metrics row (run, language, split) with the run's label counts and the
    model version number (``versions``: ModelVersion rows, to map ids to numbers).

    ``n_target`` is every target language's labels the run saw; ``n_target_lang`` is the
    row's own language's (from ``label_counts``: run id -> the run's ``label_counts``, as
    :meth:`Store.run_label_counts` gives), which the F1 curve plots.
    """
    number = {v.id: v.version for v in versions}
    label_counts = label_counts or {}
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
        "n_target_lang": target_labels_of(label_counts.get(m.run_id), m.language, m.n_target),
    } for m in metrics]
    columns = ["run_id", "model_version", "language", "split", "precision", "recall", "f1",
               "support", "n_source", "n_translated", "n_target", "n_target_lang"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["n_target_lang"] = frame["n_target_lang"].astype("Int64")
    return frame


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
    (``per_label`` as written by :func:`concner.method.evaluation.evaluate`)."""
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


#: run kinds and the reasons runs were asked for, in words (store codes -> text)
RUN_KIND_TEXT = {"retrain": "retrain", "evaluate": "evaluation", "predict": "pool prediction",
             "translate": "translation"}
RUN_REASON_TEXT = {"on_demand": "asked for",
                   "new_labels": "automatic: enough new label versions arrived on training "
                                 "sentences (source, target or translated; a dev set is "
                                 "scored, not trained on)",
                   "recovery": "re-run: its worker died", "shutdown": "re-run: worker stopped",
                   "dev_changed": "automatic: the dev set changed (every version is scored "
                                  "on it)"}


def run_reason_text(run: Any) -> str:
    """Why a run exists, in words (what triggered it; a forced full retrain says so)."""
    text = RUN_REASON_TEXT.get(run.reason, str(run.reason or ""))
    if getattr(run, "kind", None) == "retrain" and getattr(run, "force_full", False):
        text += ", as a full retrain"
    return text


def duration_text(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``; "" when unknown."""
    if seconds is None or seconds < 0:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


def promotion_text(run: Any, version: Any | None) -> str:
    """What the registry decided about the model a retrain made: ``promoted (active)``,
    ``promoted``, ``not promoted: <why>`` (the why the run recorded, or its log line for
    older runs); "" when the run made no model."""
    if getattr(run, "kind", None) != "retrain" or version is None:
        return ""
    progress = getattr(run, "progress", None) or {}
    why = str(progress.get("promotion") or "")
    prefix = f"model v{version.version}: "
    for line in [] if why else reversed(progress.get("log") or []):
        if line.startswith(prefix) and "(" in line:
            why = line[line.index("(") + 1:].rstrip(")")
            break
    if version.promoted:
        text = "promoted (active)" if version.active else "promoted"
    else:
        text = "not promoted"
    return f"{text}: {why}" if why else text


def runs_frame(runs: Sequence[Any], versions: Sequence[Any] = (),
               now: datetime | None = None) -> pd.DataFrame:
    """The runs table in words: what ran and why, its status, how long it took, the labels
    it saw, the model version it made (retrains) or used, that model's mean dev F1, and the
    promotion decision. Every cell is text or a number (no ``None``)."""
    by_id = {v.id: v for v in versions}
    now = now or datetime.now(UTC)
    rows = []
    for r in runs:
        counts = r.label_counts or {}
        version = by_id.get(r.model_version_id)
        made = r.kind == "retrain"
        model, f1 = "", ""
        if version is not None:
            model = f"v{version.version}" if made else f"used v{version.version}"
            if made and version.mean_f1 is not None:
                f1 = f"{version.mean_f1 * 100:.1f}"
        if r.started_at is None:
            took = ""
        elif r.finished_at is not None:
            took = duration_text((r.finished_at - r.started_at).total_seconds())
        else:
            took = duration_text((now - r.started_at).total_seconds()) + " so far"
        labels = ""
        if counts:
            labels = (f"{counts.get('source', 0)} source / {counts.get('translated', 0)} "
                      f"translated / {counts.get('target', 0)} target")
        rows.append({
            "run": r.id, "what": RUN_KIND_TEXT.get(r.kind, r.kind),
            "why asked": run_reason_text(r),
            "status": r.status, "update": update_text(r), "requested": _when(r.requested_at),
            "duration": took, "labels seen": labels, "model": model, "mean dev F1": f1,
            "promotion": promotion_text(r, version),
            "why full or incremental": getattr(r, "update_reason", None) or "",
            "progress": run_progress_text(r.progress) if r.status == "running" else "",
            "error": r.error or "",
        })
    return pd.DataFrame(rows, columns=["run", "what", "why asked", "status", "update",
                                       "requested", "duration", "labels seen", "model",
                                       "mean dev F1", "promotion", "why full or incremental",
                                       "progress", "error"])


def worker_status(workers: Sequence[Any], now: datetime | None = None,
                  fresh_seconds: float = WORKER_FRESH_SECONDS) -> tuple[bool, str]:
    """``(healthy, text)`` from worker heartbeat rows: :func:`concner.jobs.liveness.worker_status`
    (the one judge of liveness, shared with ``concner project status``)."""
    from concner.jobs.liveness import worker_status as judged_status

    return judged_status(workers, now, timeout_s=fresh_seconds)


#: benchmark systems (benchmarks/quality.py SYSTEMS) in words, for the dashboard
BENCHMARK_SYSTEMS = {
    "source_only": "source only", "src_tr_ce": "source + translation (CE)",
    "src_tr_lcl": "+ LCL", "src_tr_tcl": "+ TCL", "concner": "ConCNER (LCL + TCL)",
    "concner_kd": "ConCNER + KD", "source_only_kd": "source only + KD",
}
#: the benchmark systems the F1 curve draws as reference lines
REFERENCE_SYSTEMS = ("source_only", "concner_kd")
#: the benchmark's mean over its translated targets (a column of quality.json)
TRANSLATED_MEAN = "mean (translated)"


@dataclass
class Benchmark:
    """``benchmarks/results/quality.json`` for the dashboard: ``table`` has one row per
    (system, language) with ``system`` (code), ``name``, ``language``, ``f1`` (mean,
    percent), ``std`` and ``n`` (seeds); ``verdict`` is the benchmark's one-line reading."""

    table: pd.DataFrame
    verdict: str = ""


def read_results_table(path: Path, shape: str, command: str,
                       shown: str | None = None) -> dict | None:
    """A benchmark's results JSON with a ``"table"`` object; None when the file does not
    exist. Otherwise a :class:`DataFormatError` naming the file (as ``shown``), the expected
    ``shape`` and the ``command`` that rebuilds it."""
    if not path.is_file():
        return None
    shown = shown or str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"not valid JSON ({exc}); rebuild it with `{command}`",
                              path=shown) from None
    if not isinstance(data, dict) or not isinstance(data.get("table"), dict):
        raise DataFormatError(f"expected the benchmark table ({shape}); rebuild it with "
                              f"`{command}`", path=shown)
    return data


def load_benchmark(path: str | Path) -> Benchmark | None:
    """Read what ``benchmarks/quality.py`` (``write_table``) writes: ``{"table": {system:
    {column: {"mean", "std", "n"}}}, "columns": [...], "verdict": ...}`` (means in percent;
    cells without a seed, ``n`` 0, are left out). Returns None when the file does not exist;
    raises :class:`DataFormatError` when it exists but is not such a file."""
    p = Path(path)
    data = read_results_table(p, '{"table": {system: {language: {"mean", "std", "n"}}}}',
                              "python -m benchmarks.quality --table")
    if data is None:
        return None
    columns = list(data.get("columns") or [])
    records = []
    for system, cells in data["table"].items():
        if not isinstance(cells, dict):
            raise DataFormatError(f"system {system!r} is not a table of languages", path=str(p))
        for language in columns or list(cells):
            cell = cells.get(language)
            if not isinstance(cell, dict) or not cell.get("n"):
                continue
            mean = cell.get("mean")
            if not isinstance(mean, int | float) or math.isnan(mean):
                continue
            std = cell.get("std")
            records.append({"system": system, "name": BENCHMARK_SYSTEMS.get(system, system),
                            "language": language, "f1": float(mean),
                            "std": float(std) if isinstance(std, int | float) else float("nan"),
                            "n": int(cell["n"])})
    table = pd.DataFrame(records, columns=["system", "name", "language", "f1", "std", "n"])
    return Benchmark(table, str(data.get("verdict") or ""))


def benchmark_references(bench: Benchmark | None, languages: Sequence[str]) -> pd.DataFrame:
    """Reference lines for the F1 curve: the benchmark's source-only and ConCNER + KD mean
    F1 on each of ``languages`` it has; when it has none of them, on its translated mean
    (``language`` then says so). Columns ``language``, ``system``, ``F1``."""
    columns = ["language", "system", "F1"]
    if bench is None or bench.table.empty:
        return pd.DataFrame(columns=columns)
    t = bench.table[bench.table["system"].isin(REFERENCE_SYSTEMS)]
    picked = t[t["language"].isin(list(languages))]
    if picked.empty:
        picked = t[t["language"] == TRANSLATED_MEAN].assign(
            language=f"benchmark {TRANSLATED_MEAN}")
    out = pd.DataFrame({"language": picked["language"],
                        "system": "benchmark: " + picked["name"],
                        "F1": picked["f1"].round(2)})
    return out.reset_index(drop=True)[columns]
