"""Overview: create or pick a project; health of the store, queue and Argilla; counts;
the active model; the readiness checklist and the automatic-retraining switch; model
versions with the dev set their F1 is on, and evaluating them again; deleting
the project (admin, confirmed by typing its name)."""

import streamlit as st

from concner.errors import ConcnerError
from concner.ui import health
from concner.ui.auth import admin_gate
from concner.ui.context import (
    current_project_name,
    ensure_navigation,
    get_config,
    get_store,
    set_current_project,
)
from concner.ui.evaluations import render_versions
from concner.ui.overview import render_training_controls
from concner.ui.views import count_summary, per_language_counts

ensure_navigation()
st.title("Overview")
config = get_config()
store = get_store()

with st.expander("Create a project", expanded=not store.list_projects()), st.form("create_project"):
    name = st.text_input("Name", placeholder="swahili-news")
    source_lang = st.text_input("Source language (ISO 639-1)", value=config.data.source_lang)
    target_langs = st.text_input("Target languages (comma-separated)",
                                 value=", ".join(config.data.target_langs),
                                 placeholder="sw, hi")
    entity_types = st.text_input("Entity types (comma-separated)",
                                 value=", ".join(config.data.entity_types))
    encoder = st.text_input("Encoder (hub id or local folder)", value=config.model.encoder)
    if st.form_submit_button("Create project", type="primary"):
        try:
            project = store.create_project(
                name.strip(), source_lang=source_lang.strip(),
                target_langs=[t.strip() for t in target_langs.split(",") if t.strip()],
                entity_types=[t.strip() for t in entity_types.split(",") if t.strip()],
                encoder=encoder.strip())
        except ConcnerError as exc:
            st.error(str(exc))
        else:
            set_current_project(project.name)
            st.session_state.pop("project_select", None)
            # shown after the rerun (a message written before st.rerun() is never seen)
            st.session_state["concner_created_project"] = f"Project {project.name!r} created."
            st.rerun()

for note_key in ("concner_created_project", "concner_deleted_project"):
    note = st.session_state.pop(note_key, None)
    if note:
        st.success(note)

name = current_project_name()
if not name:
    st.info("Create a project to start.")
    st.subheader("Services")
    health.render(store, config, None)
    st.stop()

project = store.get_project(name)
st.subheader(f"Project {project.name}")
st.caption(f"{project.source_lang} → {', '.join(project.target_langs)} · labels "
           f"{', '.join(project.label_schema['entity_types'])} · encoder `{project.encoder}`")
counts = store.counts(name)
summary = count_summary(counts)
cols = st.columns(5)
for col, key in zip(cols, ["source labels", "translations", "target gold", "target labels",
                           "pool"]):
    col.metric(key, summary[key])
active = store.active_model_version(name)
if active is None:
    st.info("No active model yet: start a retrain on the Training page once data is in.")
else:
    f1 = "–" if active.mean_f1 is None else f"{active.mean_f1 * 100:.1f}"
    st.metric("Active model", f"v{active.version}", help=f"mean target dev F1 {f1}")
    st.caption(f"Active model v{active.version}: mean target dev F1 {f1} "
               f"(created {active.created_at:%Y-%m-%d %H:%M} UTC)")
with st.expander("Sentences per role, split and language"):
    st.dataframe(per_language_counts(counts), hide_index=True)

render_training_controls(store, config, name)
render_versions(store, name)

st.subheader("Services")
health.render(store, config, project)

with st.expander("Delete this project"):
    if admin_gate("Deleting a project"):
        st.warning(f"This deletes project **{name}** for good: its sentences, labels, "
                   "translations, runs, metrics, predictions and model checkpoints.")
        typed = st.text_input(f"Type the project name ({name}) to confirm",
                              key="delete-confirm")
        if st.button("Delete project", key="delete-project", disabled=typed != name):
            from concner.jobs.registry import ModelRegistry

            try:
                deleted = ModelRegistry.from_config(store, config).delete_project(name)
            except ConcnerError as exc:
                st.error(str(exc))
            else:
                set_current_project(None)
                st.session_state.pop("project_select", None)
                st.session_state.pop("delete-confirm", None)
                st.session_state["concner_deleted_project"] = (
                    f"Project {name!r} deleted ({deleted['sentences']} sentences, "
                    f"{deleted['runs']} runs, {deleted['model_versions']} model versions).")
                st.rerun()
