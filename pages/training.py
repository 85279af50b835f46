"""Training: start or cancel a retrain (a queued job), edit the project's training config
(validated before it is saved; an admin action), watch progress and the log tail."""

import streamlit as st

from concner.errors import ConcnerError
from concner.ui import jobs
from concner.ui.auth import admin_gate
from concner.ui.context import ensure_navigation, get_store, require_project
from concner.ui.training_form import (
    FORM_FIELDS,
    PRECEDENCE,
    effective_config,
    merge_form,
    parse_toml,
    to_toml,
    validate_overrides,
)

ensure_navigation()
st.title("Training")
store = get_store()
project = require_project(store)

c1, c2, c3 = st.columns(3)
if c1.button("Start a retrain", type="primary",
             help="An incremental update of the active model when few labels are new "
                  "(training.incremental_*), else a full retrain"):
    jobs.start_retrain(store, project.name)
if c2.button("Full retrain", help="Train from scratch on every label"):
    jobs.start_retrain(store, project.name, full=True)
if c3.button("Predict the pool with the active model"):
    jobs.start_predict(store, project.name)

st.subheader("Retrains")
jobs.live_run_panel(store, project.name, "retrain", choose=True)
st.subheader("Latest prediction run")
jobs.live_run_panel(store, project.name, "predict")

st.subheader("Training configuration")
overrides = dict(project.training_config or {})
try:
    current = effective_config(overrides)
except ConcnerError as exc:
    st.error(f"The stored training config is invalid: {exc}")
    current = effective_config({})
st.caption(PRECEDENCE)
if admin_gate("Editing the training config"):
    with st.form("training-config"):
        values = {}
        cols = st.columns(2)
        for i, (section, name, label) in enumerate(FORM_FIELDS):
            value = getattr(getattr(current, section), name)
            col = cols[i % 2]
            key = f"cfg-{section}-{name}"
            if isinstance(value, bool):
                values[(section, name)] = col.checkbox(label, value=value, key=key)
            elif isinstance(value, int):
                values[(section, name)] = int(col.number_input(label, value=value, step=1,
                                                               key=key))
            else:
                values[(section, name)] = float(col.number_input(label, value=float(value),
                                                                 format="%g", key=key))
        advanced = st.text_area("Other overrides (TOML: [model], [loss], [training], [active])",
                                value=to_toml({k: {n: v for n, v in sec.items()
                                                   if (k, n) not in {(s, f) for s, f, _ in
                                                                     FORM_FIELDS}}
                                               for k, sec in overrides.items()}),
                                key="cfg-advanced")
        if st.form_submit_button("Validate and save"):
            try:
                merged = merge_form(parse_toml(advanced), values)
                cleaned = validate_overrides(merged)
                store.update_training_config(project.name, cleaned)
            except ConcnerError as exc:
                st.error(str(exc))
            else:
                st.success("Saved; the next retrain uses it.")
    st.caption("Stored overrides (the rest are defaults from concner/config.py):")
    st.code(to_toml(overrides) or "(none)", language="toml")
