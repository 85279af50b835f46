"""Models: every model version side by side (per-language and per-label dev F1, the
difference to the active one, the dev set it is scored on, folder, training data, state
and why), the promotion rule in words, pin / roll back / unpin (concner.jobs.model_control) and
evaluating a version on the current dev sets (a worker job)."""

import streamlit as st

from concner.errors import ConcnerError
from concner.jobs.model_control import pin, roll_back, unpin
from concner.jobs.registry import ModelRegistry, rollback_target
from concner.ui.context import ensure_navigation, get_config, get_store, require_project
from concner.ui.evaluations import scores_frame, start_evaluate, version_scores
from concner.ui.models_view import per_label_frame, versions_frame

ensure_navigation()
st.title("Models")
config = get_config()
store = get_store()
project = require_project(store)
registry = ModelRegistry.from_config(store, config)
NOTE = "concner_models_note"

st.markdown(f"**Promotion rule.** {registry.rule.describe()}")
note = st.session_state.pop(NOTE, None)
if note:
    st.success(note)

versions = store.model_versions(project.name, include_deleted=True)
if not versions:
    st.info("No model version yet: start a retrain on the Training page once data is in.")
    st.stop()
pinned = registry.pinned(project.name)
if pinned is not None:
    st.info(f"v{pinned.version} is pinned: new versions are stored and evaluated but not "
            "promoted until you unpin it.")
else:
    st.caption("No version is pinned: the promotion rule decides which version is active.")

metrics = store.metrics(project.name)
runs = {r.id: r for r in store.runs(project.name, kind="retrain", limit=1000)}
languages = list(project.target_langs)
dev = store.dev_set(project.name)
scores = scores_frame(version_scores(store, project.name), dev.counts)
st.subheader("Versions")
st.dataframe(versions_frame(versions, metrics, runs, languages, project.pinned_version_id,
                            dict(zip(scores["version"], scores["scored on"]))),
             hide_index=True)
st.caption("F1 in points on each target language's gold dev sentences; \"vs active\" is the "
           "difference to the active version.")
st.subheader("Per-label dev F1")
st.dataframe(per_label_frame(versions, metrics, languages), hide_index=True)
st.caption("In brackets: the difference to the active version's F1 on that label.")


def act(what) -> None:
    """Run a pin/rollback/unpin and show its outcome after the rerun."""
    try:
        st.session_state[NOTE] = what()
    except ConcnerError as exc:
        st.error(str(exc))
    else:
        st.rerun()


st.subheader(f"Pin, roll back or evaluate a version of {project.name}")
kept = [v.version for v in sorted(versions, key=lambda v: -v.version) if v.deleted_at is None]
active = next((v for v in versions if v.active), None)
choice = st.selectbox("Version", kept, format_func=lambda n: f"v{n}", key="models-version",
                      index=next((i for i, n in enumerate(kept)
                                  if active is not None and n == active.version), 0))
previous = rollback_target(versions)
cols = st.columns(3)
if cols[0].button(f"Pin v{choice}", key="models-pin",
                  help="Make this version active and keep it active"):
    act(lambda: pin(store, registry, project.name, choice).message)
if cols[1].button(f"Roll back to v{previous.version}" if previous else "Roll back",
                  key="models-rollback", disabled=previous is None,
                  help="Pin the newest version older than the active one"):
    act(lambda: roll_back(store, registry, project.name).message)
if cols[2].button("Unpin", key="models-unpin", disabled=pinned is None,
                  help="Return to the promotion rule"):
    act(lambda: unpin(registry, project.name))
by_number = {v.version: v for v in versions}
if st.button(f"Evaluate v{choice} on the current dev sets", key="models-evaluate",
             help="Queue an evaluation of this version (a worker job)"):
    start_evaluate(store, project.name, by_number[choice].id, label=f"v{choice}")
