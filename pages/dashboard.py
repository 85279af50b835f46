"""Dashboard: F1 against label count per target language, per-label F1 of the active model,
the runs with live progress, and the benchmark comparisons (systems at 1,000 source labels;
the source-label budget curves, with the project's own points) when their results exist."""

from pathlib import Path

import streamlit as st

from concner.errors import ConcnerError
from concner.ui import budget_curves, charts
from concner.ui.context import ensure_navigation, get_store, require_project
from concner.ui.views import (
    benchmark_references,
    curve_summary,
    load_benchmark,
    metrics_frame,
    per_label_frame,
    runs_frame,
)

ensure_navigation()
st.title("Dashboard")
store = get_store()
project = require_project(store)
BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "quality.json"
try:
    bench, bench_error = load_benchmark(BENCHMARK), None
except ConcnerError as exc:
    bench, bench_error = None, str(exc)


@st.fragment(run_every="5s")
def live():
    versions = store.model_versions(project.name, include_deleted=True)
    metrics = store.metrics(project.name)
    frame = metrics_frame(metrics, versions, store.run_label_counts(project.name))
    targets = frame[frame["language"].isin(project.target_langs)]
    st.subheader("F1 against label count")
    if targets.empty:
        st.info("No evaluated run yet: metrics appear here after the worker's first retrain "
                "(target dev data is needed to evaluate).")
    else:
        x = st.radio("x axis", list(charts.LABEL_AXES), horizontal=True,
                     format_func=charts.LABEL_AXES.get, key="f1_axis")
        references = benchmark_references(bench, project.target_langs)
        st.altair_chart(charts.f1_curve_chart(targets, x=x, references=references),
                        width="stretch")
        if not references.empty:
            st.caption("Dashed lines: the benchmark's mean dev F1 of source only and of "
                       "ConCNER + KD on the same language (its own English training data, "
                       "not this project's; benchmarks/results/quality.md).")
        with st.expander(f"{targets['run_id'].nunique()} evaluated runs", expanded=False):
            st.code(curve_summary(targets), language=None)
    active = store.active_model_version(project.name)
    st.subheader("Per-label F1 of the active model")
    if active is None or active.run_id is None:
        st.info("No active model yet.")
    else:
        rows = [m for m in metrics if m.run_id == active.run_id]
        per_label = per_label_frame(rows)
        if per_label.empty:
            st.info(f"Model v{active.version} has no per-label metrics.")
        else:
            st.caption(f"model v{active.version} (run {active.run_id})")
            st.altair_chart(charts.per_label_chart(per_label), width="stretch")
    st.subheader("Runs")
    runs = store.runs(project.name, limit=50)
    if not runs:
        st.info("No runs yet.")
    else:
        st.dataframe(runs_frame(runs, versions), hide_index=True)


live()

st.subheader("ConCNER against the baselines (benchmarks)")
if bench_error:
    st.error(bench_error)
elif bench is None:
    st.caption(f"No benchmark results yet ({BENCHMARK.relative_to(BENCHMARK.parents[2])} "
               "is written by benchmarks/quality.py).")
else:
    if bench.verdict:
        st.caption(bench.verdict)
    st.altair_chart(charts.benchmark_chart(bench.table), width="stretch")
    st.dataframe(bench.table.drop(columns=["system"]), hide_index=True)

st.subheader("ConCNER against the baselines: source-label budget")
try:
    curves = budget_curves.load_budget_curves(budget_curves.RESULTS_FILE)
except ConcnerError as exc:
    curves = None
    st.error(str(exc))
else:
    if curves is None:
        st.info(budget_curves.missing_text(budget_curves.RESULTS_FILE))
if curves is not None:
    if curves.progress_text():
        st.caption(curves.progress_text())
    own = budget_curves.project_points(
        metrics_frame(store.metrics(project.name),
                      store.model_versions(project.name, include_deleted=True)),
        project.target_langs)
    for group in curves.groups:
        points = curves.group_points(group)
        if points.empty:
            st.info(f"{curves.title(group)}: no finished point yet.")
            continue
        in_domain = group == budget_curves.IN_DOMAIN
        st.markdown(f"**{curves.title(group)}**")
        if in_domain:
            st.caption(budget_curves.IN_DOMAIN_NOTE)
        st.altair_chart(charts.budget_chart(points, group, own if in_domain else None),
                        width="stretch")
