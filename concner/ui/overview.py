"""The Overview's training controls: the readiness checklist and the "Automatic
retraining" switch of the current project (see :mod:`concner.jobs.readiness`,
:mod:`concner.jobs.autoretrain`)."""

from __future__ import annotations

import streamlit as st

from concner.jobs.readiness import Readiness, project_readiness

AUTO_LABEL = "Automatic retraining"


def checklist_lines(readiness: Readiness) -> list[str]:
    """One markdown line per requirement: a tick or an empty box, what is there, and for
    a missing one what to do next (the app's control)."""
    lines = []
    for req in readiness.requirements:
        mark = "✅" if req.met else "⬜"
        line = f"{mark} **{req.title}**: {req.have}"
        if not req.met:
            line += f"  \n  ↳ next: {req.todo}"
        lines.append(line)
    return lines


def auto_status_text(auto_on: bool, readiness: Readiness, min_new_labels: int) -> str:
    """What the worker does for this project by itself, in one sentence."""
    if not auto_on:
        return ("Automatic retraining is off: the worker retrains only when asked (Training "
                "page, \"Start a retrain\").")
    if not readiness.ready:
        missing = ", ".join(r.title.lower() for r in readiness.missing)
        return (f"Automatic retraining is on but waits until the project is ready "
                f"(missing: {missing}).")
    return (f"Automatic retraining is on: the worker retrains when {min_new_labels} new labels "
            "arrived since the last retrain (services.retrain_min_new_labels).")


def render_training_controls(store, config, name: str) -> Readiness:
    """The switch, what it means now, and the readiness checklist; returns the readiness."""
    project = store.get_project(name)
    readiness = project_readiness(store, name, config)
    st.subheader("Training readiness")
    key = f"auto-retrain-{name}"
    on = st.toggle(AUTO_LABEL, value=project.auto_retrain, key=key,
                   help="On: the worker retrains this project by itself when new labels "
                        "arrive, once every requirement below is met. Off: only the "
                        "Training page's buttons (or concner retrain) start a retrain.")
    if on != project.auto_retrain:
        store.set_auto_retrain(name, on)
    text = auto_status_text(on, readiness, config.services.retrain_min_new_labels)
    (st.success if on and readiness.ready else st.info)(text)
    st.markdown("\n\n".join(checklist_lines(readiness)))
    return readiness
