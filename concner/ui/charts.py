"""Altair charts for the dashboard. Inputs are plain pandas frames built from store rows
(nothing is recomputed here: the curve is the metrics rows the worker wrote)."""

from __future__ import annotations

import pandas as pd

#: x-axis choices for the F1 curve: column -> axis title. Each point sits at its own
#: language's count: source labels are shared by every target language, target corrections
#: are each language's own (``n_target_lang``, see :func:`concner.ui.views.metrics_frame`).
LABEL_AXES = {
    "n_source": "source-language labels",
    "n_target_lang": "target corrections in that language",
}
#: axis formats: whole label counts, F1 in whole percent
COUNT_FORMAT, F1_FORMAT = "d", ".0f"


def f1_curve_data(metrics: pd.DataFrame, x: str) -> pd.DataFrame:
    """The points of the F1 curve: one per (run, language) with a known ``x`` count,
    ``F1`` in percent, sorted along ``x``. A model version evaluated again (a changed dev
    set, the Models page's re-evaluation) is one point, at its newest run's F1: the older
    scores were on another dev set, and would stack at the same label count."""
    if x not in LABEL_AXES:
        raise ValueError(f"x must be one of {list(LABEL_AXES)}")
    df = metrics.astype({"n_target_lang": "float"})  # unknown counts: NaN, not pd.NA
    df = df[df[x].notna()]
    versioned = df[df["model_version"].notna()].sort_values("run_id")
    newest = versioned.drop_duplicates(["model_version", "language"], keep="last")
    df = pd.concat([df[df["model_version"].isna()], newest])
    df[x] = df[x].astype(int)
    df["F1"] = (df["f1"] * 100).round(2)
    df["model_version"] = df["model_version"].map(
        lambda v: "-" if pd.isna(v) else f"v{int(v)}")
    return df.sort_values([x, "run_id"]).reset_index(drop=True)


def f1_curve_chart(metrics: pd.DataFrame, x: str = "n_source",
                   references: pd.DataFrame | None = None):
    """F1 (percent) against label count, one line per target language, each point at that
    language's own count of ``x`` (see :data:`LABEL_AXES`).

    ``metrics``: :func:`concner.ui.views.metrics_frame` rows. ``references``: dashed
    horizontal lines (``language``, ``system``, ``F1``; the benchmark's source-only and
    ConCNER + KD means, :func:`concner.ui.views.benchmark_references`). Hover shows the
    run, model version and exact counts.
    """
    import altair as alt

    df = f1_curve_data(metrics, x)
    tooltip = [
        alt.Tooltip("language:N"), alt.Tooltip("F1:Q", format=".1f"),
        alt.Tooltip("run_id:Q", title="run", format="d"),
        alt.Tooltip("model_version:N", title="model"),
        alt.Tooltip("n_source:Q", title="source labels", format="d"),
        alt.Tooltip("n_translated:Q", title="translated labels", format="d"),
        alt.Tooltip("n_target_lang:Q", title="target corrections (this language)", format="d"),
        alt.Tooltip("support:Q", title="dev entities", format="d"),
    ]
    y_axis = alt.Axis(format=F1_FORMAT)
    y_scale = alt.Scale(domain=[0, 100])
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:Q", title=LABEL_AXES[x],
                axis=alt.Axis(format=COUNT_FORMAT, tickMinStep=1)),
        y=alt.Y("F1:Q", title="dev F1 (%)", scale=y_scale, axis=y_axis),
        color=alt.Color("language:N", title="language"),
        tooltip=tooltip,
    )
    chart = base.mark_line() + base.mark_point(filled=True, size=60)
    if references is not None and not references.empty:
        rules = alt.Chart(references).mark_rule(strokeWidth=1.5, opacity=0.7).encode(
            y=alt.Y("F1:Q", scale=y_scale, axis=y_axis),
            color=alt.Color("language:N", title="language"),
            strokeDash=alt.StrokeDash("system:N", title="reference"),
            tooltip=["system", "language", alt.Tooltip("F1:Q", format=".1f")],
        )
        chart = chart + rules
    return chart.properties(height=320)


def per_label_chart(per_label: pd.DataFrame):
    """Bars of F1 per entity label (``label``, ``language``, ``f1`` fraction, ``support``)."""
    import altair as alt

    df = per_label.copy()
    df["F1"] = (df["f1"] * 100).round(2)
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("label:N", title="label"),
        xOffset="language:N",
        y=alt.Y("F1:Q", title="F1 (%)", scale=alt.Scale(domain=[0, 100]),
                axis=alt.Axis(format=F1_FORMAT)),
        color=alt.Color("language:N"),
        tooltip=["label", "language", alt.Tooltip("F1:Q", format=".2f"), "support"],
    ).properties(height=260)


def benchmark_chart(results: pd.DataFrame):
    """Mean F1 per system and language from the benchmark table
    (:func:`concner.ui.views.load_benchmark`: ``name``, ``language``, ``f1`` in percent,
    ``std``, ``n`` seeds)."""
    import altair as alt

    return alt.Chart(results).mark_bar().encode(
        x=alt.X("language:N", sort=list(dict.fromkeys(results["language"]))),
        xOffset="name:N",
        y=alt.Y("f1:Q", title="F1 (%)", axis=alt.Axis(format=F1_FORMAT)),
        color=alt.Color("name:N", title="system"),
        tooltip=[alt.Tooltip("name:N", title="system"), "language",
                 alt.Tooltip("f1:Q", format=".1f", title="F1"),
                 alt.Tooltip("std:Q", format=".1f"), alt.Tooltip("n:Q", title="seeds")],
    ).properties(height=300)


#: the source-budget charts' x axis (the benchmark's budgets and a project's own count)
BUDGET_AXIS = "English (source-language) labelled sentences"
PROJECT_SERIES = "this project"


def budget_ticks(budgets, project: pd.DataFrame | None = None) -> list[int]:
    """The label axis ticks: the benchmark's budgets, and the project's smallest and
    largest source label count where they fall outside the budgets' range."""
    ticks = {int(b) for b in budgets}
    if project is not None and not project.empty and ticks:
        ticks |= {int(n) for n in (project["n_source"].min(), project["n_source"].max())
                  if not min(ticks) <= n <= max(ticks)}
    return sorted(ticks)


def budget_chart(points: pd.DataFrame, group: str, project: pd.DataFrame | None = None):
    """Dev F1 (percent, mean over the group's languages) against source labels for one
    target ``group`` of the source-budget benchmark (the spec's ``description``): a line
    per system (``name``) through its budgets with the seed spread (``low``..``high``)
    shaded (:func:`concner.ui.budget_curves.load_budget_curves` points). ``project``: the
    project's own points (:func:`concner.ui.budget_curves.project_points`), a black dashed
    line of diamonds on the same axes. Log label axis, whole-count ticks
    (:func:`budget_ticks`)."""
    import altair as alt

    x_axis = alt.Axis(values=budget_ticks(points["budget"], project), format=COUNT_FORMAT,
                      title=BUDGET_AXIS, labelOverlap="greedy")
    x_scale = alt.Scale(type="log")
    y_scale = alt.Scale(domain=[0, 100])
    y_axis = alt.Axis(format=F1_FORMAT, title="dev F1 (%)")
    systems = list(dict.fromkeys(points["name"]))
    color = alt.Color("name:N", title="system", sort=systems,
                      scale=alt.Scale(domain=systems, scheme="tableau10"),
                      legend=alt.Legend(labelLimit=260, symbolOpacity=1))
    base = alt.Chart(points).encode(x=alt.X("budget:Q", scale=x_scale, axis=x_axis),
                                    color=color)
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("low:Q", scale=y_scale, axis=y_axis), y2="high:Q")
    tooltip = [alt.Tooltip("name:N", title="system"),
               alt.Tooltip("budget:Q", title="source labels", format="d"),
               alt.Tooltip("F1:Q", format=".1f"), alt.Tooltip("std:Q", format=".1f"),
               alt.Tooltip("seeds:Q", format="d")]
    means = base.encode(y=alt.Y("F1:Q", scale=y_scale, axis=y_axis), tooltip=tooltip)
    chart = band + means.mark_line() + means.mark_point(filled=True, size=50)
    if project is not None and not project.empty:
        own = alt.Chart(project.assign(series=PROJECT_SERIES)).encode(
            x=alt.X("n_source:Q", scale=x_scale, axis=x_axis),
            y=alt.Y("F1:Q", scale=y_scale, axis=y_axis),
            order="n_source:Q",
            shape=alt.Shape("series:N", title="", scale=alt.Scale(range=["diamond"]),
                            legend=alt.Legend(symbolFillColor="black",
                                              symbolStrokeColor="black")),
            tooltip=[alt.Tooltip("version:N", title="model"),
                     alt.Tooltip("n_source:Q", title="source labels", format="d"),
                     alt.Tooltip("F1:Q", format=".1f"), alt.Tooltip("languages:N")])
        chart = (chart + own.mark_line(color="black", strokeDash=[4, 3])
                 + own.mark_point(color="black", filled=True, size=90))
    return chart.properties(description=group, height=300)
