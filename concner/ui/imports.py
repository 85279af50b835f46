"""The Data page's list of imports, and "Delete this import": what goes is shown first,
then the user confirms (see :mod:`concner.store.imports`; a changed dev set has every
model version evaluated again, :mod:`concner.jobs.unimport`)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from concner.errors import ConcnerError
from concner.jobs.unimport import undo_import

#: session key of the import the user asked to delete (waiting for the confirmation)
PENDING_KEY = "import-delete-pending"
DELETE_LABEL = "Delete this import"


def imports_frame(batches: Sequence) -> pd.DataFrame:
    """One row per import (``ImportBatchInfo``), newest first, every cell text or a number."""
    rows = [{"import": b.id, "file or dataset": b.source_name, "role": b.role,
             "split": b.split, "language": b.lang or "mixed", "sentences": b.n_sentences,
             "still stored": b.n_left, "imported (UTC)": f"{b.created_at:%Y-%m-%d %H:%M}"}
            for b in batches]
    return pd.DataFrame(rows, columns=["import", "file or dataset", "role", "split",
                                       "language", "sentences", "still stored",
                                       "imported (UTC)"])


def confirm_label(batch_id: int, project: str) -> str:
    return f"Yes, delete import {batch_id} from project '{project}'"


def imports_panel(store, project: str) -> None:
    """The project's imports and the two-step "Delete this import"."""
    batches = store.import_batches(project)
    note = st.session_state.pop("import-deleted", None)
    if note:
        st.success(note)
    if not batches:
        st.caption("No recorded imports yet (sentences imported before this version belong "
                   "to none).")
        return
    st.dataframe(imports_frame(batches), hide_index=True)
    by_id = {b.id: b for b in batches}
    picked = st.selectbox("Import", list(by_id), format_func=lambda i: by_id[i].describe(),
                          key="import-pick")
    if st.button(DELETE_LABEL, key="import-delete"):
        st.session_state[PENDING_KEY] = picked
    if st.session_state.get(PENDING_KEY) != picked:
        return
    try:
        preview = store.preview_import_deletion(project, picked)
    except ConcnerError as exc:
        st.session_state.pop(PENDING_KEY, None)
        st.error(str(exc))
        return
    st.warning(f"This deletes {by_id[picked].describe()} of project **{project}** for good: "
               f"{preview.summary()}.")
    c1, c2 = st.columns(2)
    if c1.button(confirm_label(picked, project), type="primary", key="import-confirm"):
        st.session_state.pop(PENDING_KEY, None)
        try:
            deleted, dev_note = undo_import(store, project, picked)
        except ConcnerError as exc:
            st.error(str(exc))
            return
        st.session_state.pop("import-pick", None)
        st.session_state["import-deleted"] = " ".join(x for x in (
            f"Deleted import {picked}: {deleted.summary()}.", dev_note) if x)
        st.rerun()
    if c2.button("Keep it", key="import-keep"):
        st.session_state.pop(PENDING_KEY, None)
        st.rerun()
