"""Altair charts for the dashboard. Inputs are plain pandas frames built from store rows
(nothing is recomputed here: the curve is the metrics rows the worker wrote)."""

from __future__ import annotations

import pandas as pd

#: x-axis choices for the F1 curve: column -> axis title
LABEL_AXES = {
    "n_labels": "labels seen (source + translated + target)",
    "n_target": "target-language labels",
    "n_source": "source-language labels",
}


def f1_curve_chart(metrics: pd.DataFrame, x: str = "n_labels"):
    """F1 (percent) against label count, one line per target language.

    ``metrics`` columns: ``run_id``, ``model_version`` (may be empty), ``language``,
    ``split``, ``f1`` (fraction), ``precision``, ``recall``, ``support``, ``n_source``,
    ``n_translated``, ``n_target``. Hover shows the run, model version and exact counts.
    """
    import altair as alt

    if x not in LABEL_AXES:
        raise ValueError(f"x must be one of {list(LABEL_AXES)}")
    df = metrics.copy()
    df["n_labels"] = df["n_source"] + df["n_translated"] + df["n_target"]
    df["F1"] = (df["f1"] * 100).round(2)
    df["model_version"] = df["model_version"].fillna("-").astype(str)
    df = df.sort_values([x, "run_id"])
    tooltip = [
        alt.Tooltip("language:N"), alt.Tooltip("F1:Q", format=".2f"),
        alt.Tooltip("run_id:Q", title="run"), alt.Tooltip("model_version:N", title="model"),
        alt.Tooltip("n_source:Q", title="source labels"),
        alt.Tooltip("n_translated:Q", title="translated labels"),
        alt.Tooltip("n_target:Q", title="target labels"),
        alt.Tooltip("support:Q", title="dev entities"),
    ]
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:Q", title=LABEL_AXES[x]),
        y=alt.Y("F1:Q", title="dev F1 (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("language:N", title="language"),
        tooltip=tooltip,
    )
    return (base.mark_line() + base.mark_point(filled=True, size=60)).properties(height=320)


def per_label_chart(per_label: pd.DataFrame):
    """Bars of F1 per entity label (``label``, ``language``, ``f1`` fraction, ``support``)."""
    import altair as alt

    df = per_label.copy()
    df["F1"] = (df["f1"] * 100).round(2)
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("label:N", title="label"),
        xOffset="language:N",
        y=alt.Y("F1:Q", title="F1 (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("language:N"),
        tooltip=["label", "language", alt.Tooltip("F1:Q", format=".2f"), "support"],
    ).properties(height=260)


def benchmark_chart(results: pd.DataFrame):
    """Mean F1 per system and language from ``benchmarks/results/quality.json`` rows
    (``system``, ``language``, ``f1`` in percent, ``n`` seeds)."""
    import altair as alt

    return alt.Chart(results).mark_bar().encode(
        x=alt.X("language:N"),
        xOffset="system:N",
        y=alt.Y("f1:Q", title="F1 (%)"),
        color=alt.Color("system:N"),
        tooltip=["system", "language", alt.Tooltip("f1:Q", format=".2f"), "n"],
    ).properties(height=300)
