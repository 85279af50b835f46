"""The source-label budget benchmark shaped for the dashboard: what
``benchmarks/source_budget.py`` (``write_table``) writes to ``source_budget.json``, read into
one frame of curve points, and the project's own points to draw beside them.

Pure functions (no Streamlit, no import of ``benchmarks``: the file carries the systems'
names and the groups' titles; an older file without them falls back to the raw keys).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from concner.errors import DataFormatError
from concner.ui.views import read_results_table

ROOT = Path(__file__).resolve().parents[2]
#: where the sweep writes its table (the page reads this; tests point it elsewhere)
RESULTS_FILE = ROOT / "benchmarks" / "results" / "source_budget.json"
#: the command that (re)builds the file from the sweep's rows
TABLE_COMMAND = "python -m benchmarks.source_budget --table"
#: the group the project's own points are drawn on: the translated PAN-X targets
IN_DOMAIN = "in_domain"
#: chart order; groups the file has beyond these follow in the file's order
GROUP_ORDER = ("in_domain", "zero_shot", "masakhaner")
#: what the in-domain chart says about its two kinds of line
IN_DOMAIN_NOTE = ("Benchmark: PAN-X (Wikipedia) es/de/nl dev sets, trained on English PAN-X "
                  "sentences. Black diamonds: this project's model versions (mean "
                  "dev F1 over its target languages against its source label count), on its "
                  "own data and dev sets, not the benchmark's.")
POINT_COLUMNS = ["group", "system", "name", "budget", "F1", "std", "low", "high", "seeds"]
PROJECT_COLUMNS = ["model_version", "version", "n_source", "F1", "languages"]


@dataclass(frozen=True)
class BudgetCurves:
    """``points``: one row per finished (group, system, budget) cell: mean dev F1 over the
    group's languages in percent (``F1``), its seed ``std`` and the band ``low``..``high``
    (mean ± std), ``seeds`` the number of seeds. ``done``/``queue``: the sweep's progress
    in cells (None when the file has no status block)."""

    points: pd.DataFrame
    groups: list[str]
    group_titles: dict[str, str]
    done: int | None = None
    queue: int | None = None
    verdict: str = ""

    def group_points(self, group: str) -> pd.DataFrame:
        return self.points[self.points["group"] == group].reset_index(drop=True)

    def title(self, group: str) -> str:
        return self.group_titles.get(group, group)

    def progress_text(self) -> str:
        if self.done is None or self.queue is None:
            return ""
        return (f"The sweep has done {self.done} of {self.queue} cells. A system's point "
                "appears once a seed has every language of its group; the band is ± the "
                "standard deviation over its seeds; F1 is the mean over the group's "
                "languages.")


def shown_path(path: str | Path) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def missing_text(path: str | Path) -> str:
    return (f"No source-budget results yet: {shown_path(path)} is written by the sweep "
            f"(benchmarks/source_budget.py); `{TABLE_COMMAND}` rebuilds it from the rows "
            "done so far.")


def _malformed(path: Path, reason: str) -> DataFormatError:
    return DataFormatError(f"{reason}; rebuild it with `{TABLE_COMMAND}`", path=shown_path(path))


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _group_points(path: Path, group: str, budgets, names: dict) -> list[dict]:
    if not isinstance(budgets, dict):
        raise _malformed(path, f"group {group!r} is not a table of budgets")
    records = []
    for budget, systems in budgets.items():
        try:
            n = int(budget)
        except (TypeError, ValueError):
            raise _malformed(path, f"group {group!r}: budget {budget!r} is not a number") from None
        if not isinstance(systems, dict):
            raise _malformed(path, f"group {group!r}, budget {n}: not a table of systems")
        for system, cell in systems.items():
            if not isinstance(cell, dict):
                raise _malformed(path, f"group {group!r}, budget {n}, system {system!r}: "
                                 "not a cell")
            mean = _number(cell.get("mean"))
            if mean is None:  # not every language of the group has a seed yet
                continue
            std = _number(cell.get("std")) or 0.0
            seeds = cell.get("seeds")
            records.append({"group": group, "system": system,
                            "name": str(names.get(system, system)), "budget": n, "F1": mean,
                            "std": std, "low": mean - std, "high": mean + std,
                            "seeds": len(seeds) if isinstance(seeds, list) else 0})
    return records


def load_budget_curves(path: str | Path = RESULTS_FILE) -> BudgetCurves | None:
    """Read ``source_budget.json``: ``{"table": {group: {budget: {system: {"mean", "std",
    "seeds", ...}}}}, "labels": {system: name}, "group_titles": {group: title}, "status":
    {"done", "queue"}, "verdict"}`` (F1 in percent; cells whose mean is null are left out).
    Returns None when the file does not exist; raises :class:`DataFormatError` when it is
    not such a file."""
    p = Path(path)
    data = read_results_table(p, '{"table": {group: {budget: {system: {"mean", "std", '
                              '"seeds"}}}}}', TABLE_COMMAND, shown_path(p))
    if data is None:
        return None
    names = data.get("labels") if isinstance(data.get("labels"), dict) else {}
    titles = data.get("group_titles") if isinstance(data.get("group_titles"), dict) else {}
    table = data["table"]
    known = [*table, *titles]
    groups = [g for g in GROUP_ORDER if g in known] + list(dict.fromkeys(
        g for g in known if g not in GROUP_ORDER))
    records = [r for g in groups for r in _group_points(p, g, table.get(g, {}), names)]
    order = {s: i for i, s in enumerate(names)}  # the file's system order, then the rest
    records.sort(key=lambda r: (groups.index(r["group"]), order.get(r["system"], len(order)),
                                r["budget"]))
    points = pd.DataFrame(records, columns=POINT_COLUMNS)
    status = data.get("status") if isinstance(data.get("status"), dict) else {}
    done, queue = _number(status.get("done")), _number(status.get("queue"))
    return BudgetCurves(points, groups,
                        {g: str(t) for g, t in titles.items()},
                        None if done is None else int(done), None if queue is None else int(queue),
                        str(data.get("verdict") or ""))


def project_points(metrics: pd.DataFrame, target_langs: Sequence[str]) -> pd.DataFrame:
    """The project's own points for the in-domain budget chart: per model version, its
    newest evaluated run's mean target dev F1 (percent, over ``target_langs`` it was scored
    on) against that run's source label count (at least 1: the chart's label axis is
    logarithmic). ``metrics``: :func:`concner.ui.views.metrics_frame` rows."""
    df = metrics[metrics["model_version"].notna() & metrics["language"].isin(list(target_langs))
                 & (metrics["split"] == "dev") & (metrics["n_source"].fillna(0) > 0)]
    records = []
    for version, rows in df.groupby("model_version"):
        newest = rows[rows["run_id"] == rows["run_id"].max()]
        records.append({"model_version": int(version), "version": f"v{int(version)}",
                        "n_source": int(newest["n_source"].iloc[0]),
                        "F1": round(float(newest["f1"].mean()) * 100, 2),
                        "languages": ", ".join(sorted(newest["language"]))})
    out = pd.DataFrame(records, columns=PROJECT_COLUMNS)
    return out.sort_values("model_version").reset_index(drop=True)
