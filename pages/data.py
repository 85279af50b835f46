"""Data: upload source labels, unlabelled target text and gold target dev data; translate."""

import streamlit as st

from concner.ui.context import ensure_navigation, get_config, get_store, require_project
from concner.ui.imports import imports_panel
from concner.ui.translate import translation_panel
from concner.ui.uploads import REPAIR_LABEL, import_dataset, import_uploads

ensure_navigation()
st.title("Data")
config = get_config()
store = get_store()
project = require_project(store)
max_mb = config.data.max_upload_mb
st.caption(f"Uploads up to {max_mb} MB each (data.max_upload_mb); a file with an error imports "
           "nothing, and every error is listed with its file and line.")


def show_result(report, errors, summaries=()):
    if errors:
        st.error("Nothing was imported:\n\n" + "\n".join(f"- `{line}`" for line in errors.lines()))
    elif report is not None:
        st.success(f"Imported {report.summary()}.")
        for s in summaries:
            st.caption(s)


#: upload kind -> (tab, file uploader label, languages, file types)
KINDS = {
    "source": ("Source labelled data", "Source labelled data files", [project.source_lang],
               ["tsv", "conll", "iob", "bio", "jsonl", "json", "txt"]),
    "target_text": ("Unlabelled target text", "Unlabelled target text files",
                    list(project.target_langs), ["txt", "jsonl", "tsv", "conll"]),
    "translation": ("Upload translations", "Translation files (your own, JSONL)",
                    list(project.target_langs), ["jsonl", "json"]),
    "target_gold": ("Gold target dev data", "Gold target dev data files", list(project.target_langs),
                    ["tsv", "conll", "iob", "bio", "jsonl", "json"]),
}
tabs = st.tabs([v[0] for v in KINDS.values()] + ["Machine-translate the source"])
for tab, (kind, (_tab, title, langs, types)) in zip(tabs, KINDS.items()):
    with tab:
        with st.form(f"upload-{kind}", clear_on_submit=False):
            generation = st.session_state.get(f"upload-gen-{kind}", 0)
            files = st.file_uploader(title, type=types, accept_multiple_files=True,
                                     key=f"files-{kind}-{generation}")
            c1, c2, c3 = st.columns(3)
            lang = c1.selectbox("Language", langs, key=f"lang-{kind}")
            fmt = c2.selectbox("Format", ["auto", "conll", "jsonl", "text"], key=f"fmt-{kind}",
                               help="auto: from the file name (.tsv/.conll, .jsonl, .txt)")
            if kind == "target_text":
                option = c3.checkbox("Already tokenised (split on spaces)", key=f"pretok-{kind}")
            else:
                option = c3.checkbox(REPAIR_LABEL, key=f"repair-{kind}")
            if st.form_submit_button(f"Import files into project '{project.name}'",
                                     type="primary"):
                if not files:
                    st.warning("Choose at least one file.")
                else:
                    with st.spinner("Validating and importing ..."):
                        result = import_uploads(
                            store, project.name, files, kind=kind, lang=lang, max_mb=max_mb,
                            fmt=fmt, pretokenized=option if kind == "target_text" else False,
                            repair_iob=option if kind != "target_text" else False)
                    if result[0] is None:
                        show_result(*result)
                    else:  # imported: say so, and empty the uploader for the next file
                        st.session_state[f"imported-{kind}"] = result
                        st.session_state[f"upload-gen-{kind}"] = generation + 1
                        st.rerun()
        if f"imported-{kind}" in st.session_state:
            show_result(*st.session_state.pop(f"imported-{kind}"))
        if kind != "target_text":
            with st.form(f"hf-{kind}"):
                st.markdown("…or a Hugging Face `datasets` source (hub id, `save_to_disk` folder "
                            "or parquet file)")
                c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1, 2])
                source = c1.text_input("Dataset", placeholder="unimelb-nlp/wikiann",
                                       key=f"hf-src-{kind}")
                hf_split = c2.text_input("Split", value="train" if kind == "source" else
                                         "validation", key=f"hf-split-{kind}")
                hf_lang = c3.selectbox("Language", langs, key=f"hf-lang-{kind}")
                limit = c4.number_input("Max sentences", min_value=0, value=0,
                                        key=f"hf-limit-{kind}", help="0 = all")
                hf_repair = c5.checkbox(REPAIR_LABEL, key=f"hf-repair-{kind}")
                if st.form_submit_button(f"Import dataset into project '{project.name}'"):
                    with st.spinner("Loading ..."):
                        report, errors = import_dataset(
                            store, project.name, source.strip(), kind=kind, lang=hf_lang,
                            split=hf_split.strip(), limit=int(limit) or None,
                            repair_iob=hf_repair)
                    show_result(report, errors)

with tabs[-1]:
    translation_panel(store, config, project)

st.subheader("Imports")
st.caption("Every import, newest first. Deleting one removes its sentences with their labels, "
           "corrections, translations and predictions (what goes is shown first).")
imports_panel(store, project.name)
