"""Export: what (source, translations, target gold, silver predictions) and how (DatasetDict,
parquet, CoNLL, JSONL); download, or push to the Hub. An admin action."""

import streamlit as st

from concner.corpus.export import FORMATS, LAYOUTS, PARTS, export_zip, gather, push_to_hub
from concner.errors import ConcnerError
from concner.labels import LabelSchema
from concner.ui.auth import admin_gate
from concner.ui.context import ensure_navigation, get_store, require_project

ensure_navigation()
st.title("Export")
store = get_store()
project = require_project(store)
if not admin_gate("Export"):
    st.stop()

schema = LabelSchema.from_dict(project.label_schema)
FORMAT_NAMES = {"hf": "Hugging Face DatasetDict (save_to_disk)", "parquet": "Parquet",
                "conll": "CoNLL (token<TAB>tag)", "jsonl": "JSONL (tokens, ner_tags)"}
parts = st.multiselect("What", PARTS, default=["source", "translations", "target"],
                       help="silver = the active model's predictions on unlabelled target text")
c1, c2 = st.columns(2)
fmt = c1.selectbox("Format", FORMATS, format_func=FORMAT_NAMES.get)
layout = c2.selectbox("Splits", LAYOUTS, help="parts: one split per part; run_ner: "
                                               "train / validation / test for run_ner.py")

if st.button("Prepare export", type="primary"):
    try:
        splits = gather(store, project.name, parts)
        data = export_zip(splits, schema, fmt, layout=layout, name=f"{project.name}-{fmt}")
    except ConcnerError as exc:
        st.error(str(exc))
    else:
        st.session_state["export_zip"] = (f"{project.name}-{fmt}.zip", data,
                                          {k: len(v) for k, v in splits.items()})

if "export_zip" in st.session_state:
    file_name, data, counts = st.session_state["export_zip"]
    st.write("Sentences per part: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    st.download_button("Download " + file_name, data, file_name=file_name,
                       mime="application/zip")

with st.expander("Push to the Hugging Face Hub"), st.form("push"):
    repo = st.text_input("Repository", placeholder="your-name/concner-export")
    token = st.text_input("Write token", type="password",
                          help="used for this push only; never stored or shown")
    private = st.checkbox("Private", value=True)
    if st.form_submit_button(f"Push project '{project.name}' to the Hub"):
        try:
            url = push_to_hub(gather(store, project.name, parts), schema, repo.strip(),
                              token, layout=layout, private=private)
        except ConcnerError as exc:
            st.error(str(exc))
        else:
            st.success(f"Pushed to {url}")
