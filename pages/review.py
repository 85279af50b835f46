"""Review: the active model's predictions on target sentences (to correct) or source
sentences (to label), highlighted (right to left where the script is), filtered and sorted
in the active-learning order; send a batch to Argilla; see prediction vs correction once
answers come back."""

import streamlit as st

from concner.active.ask_order import review_rows
from concner.argilla.records import ASK_ORDER_LINK
from concner.errors import ConcnerError
from concner.labels import LabelSchema
from concner.ui import jobs
from concner.ui.argilla_view import ask_order_links, in_argilla, send_batch, sync_states
from concner.ui.context import ensure_navigation, get_config, get_store, require_project
from concner.ui.highlight import highlight_html, legend_html, side_by_side_html
from concner.ui.review import (
    PAGE_SIZE,
    PUSH_POLICY,
    SIDES,
    STATUSES,
    batch_to_send,
    filter_rows,
    meta_text,
    page_count,
    page_of,
    ranking_strategy,
    sort_choices,
    sort_rows,
)

ensure_navigation()
st.title("Review")
config = get_config()
store = get_store()
project = require_project(store)
schema = LabelSchema.from_dict(project.label_schema)

st.caption(PUSH_POLICY.format(k=config.services.argilla_queue_size or "all"))
with st.expander("Argilla sync"):
    st.dataframe(sync_states(store, project), hide_index=True)
    if st.button(f"Sync with Argilla now (project '{project.name}')"):
        jobs.start_sync(project.name)
    if st.button(f"Links to the datasets of '{project.name}' in Argilla, in ask order"):
        try:
            links = ask_order_links(config, project)
        except ConcnerError as exc:
            st.error(str(exc))
        else:
            for name, url in links:
                st.link_button(f"{ASK_ORDER_LINK}: {name}", url)
            if not links:
                st.info("Argilla has no dataset of this project yet: a sync creates each "
                        "one when it gets its first sentences.")

active = store.active_model_version(project.name)
if active is None:
    st.info("No active model yet: start a retrain on the Training page.")
    st.stop()
versions = sorted(store.model_versions(project.name, include_deleted=True),
                  key=lambda v: -v.version)
predictions = [(v.version, store.predictions(v.id)) for v in versions]
if not any(rows for _, rows in predictions):
    st.info(f"Model v{active.version} has not predicted the pool yet.")
    if st.button("Predict the pool"):
        jobs.start_predict(store, project.name)
    st.stop()
if not store.predictions(active.id):
    st.warning(f"The active model v{active.version} has not predicted the pool yet; the "
               "predictions below are from older versions (marked per sentence).")
    if st.button("Predict the pool"):
        jobs.start_predict(store, project.name)

side = st.radio("Sentences", list(SIDES), format_func=SIDES.get, horizontal=True)
sentences = store.sentences(project.name, role=side)
authors = store.label_authors([s.meta["db_id"] for s in sentences if s.tags is not None])
rows = review_rows(sentences, predictions, authors)
side_langs = list(project.target_langs) if side == "target" else [project.source_lang]
c1, c2, c3, c4 = st.columns([2, 2, 1.5, 3.5])
langs = c1.multiselect("Languages", side_langs, default=side_langs)
labels = c2.multiselect("Has a predicted entity of type", schema.entity_types)
status = c3.selectbox("Status", list(STATUSES), format_func=STATUSES.get)
strategy = ranking_strategy(rows, active.version)
sorts = sort_choices(strategy)
how = c4.selectbox("Sort", list(sorts), format_func=sorts.get)
sent = in_argilla(store, project)
shown = sort_rows(filter_rows(rows, langs=langs, labels=labels, status=status,
                              in_argilla=sent), how)
st.caption(f"Active model v{active.version} · {len(shown)} of {len(rows)} predicted sentences")
st.markdown(legend_html(schema.entity_types), unsafe_allow_html=True)

if status != "corrected":
    batch_size = st.number_input("Batch to send", min_value=1, max_value=max(1, len(shown)),
                                 value=min(config.active.batch_size, max(1, len(shown))))
    batch, again = batch_to_send(shown, sent, int(batch_size))
    if again:
        st.caption("Every unanswered sentence shown is in Argilla already: sending them "
                   "again brings their suggestions up to date.")
    if st.button(f"Send {len(batch)} sentences of '{project.name}' to Argilla", type="primary",
                 disabled=not batch):
        try:
            result = send_batch(config, store, project, batch, role=side)
        except ConcnerError as exc:
            st.error(str(exc))
        else:
            st.success(f"Sent {result.n_records} records to Argilla dataset {result.dataset} "
                       "(now marked \"in Argilla\" below).")
            st.link_button("Open the dataset in Argilla", result.url)

pages = page_count(len(shown), PAGE_SIZE)
page = 1
if pages > 1:  # a new filter or sort starts again at page 1
    page = int(st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1,
                               key=f"page-{side}-{langs}-{labels}-{status}-{how}"))
part, where = page_of(shown, page, PAGE_SIZE)
st.caption(where.capitalize())
for r in part:
    with st.container(border=True):
        if r.corrected is not None:
            corrected_spans = schema.tags_to_spans(r.corrected, r.sentence.offsets)
            who = ", ".join(r.authors) or "unknown"
            st.markdown(side_by_side_html(r.sentence.text, r.spans, corrected_spans,
                                          r.sentence.lang, right=f"correction by {who}"),
                        unsafe_allow_html=True)
        else:
            st.markdown(highlight_html(r.sentence.text, r.spans, r.sentence.lang,
                                       sentence_id=r.sentence.id), unsafe_allow_html=True)
        st.caption(meta_text(r, active.version, strategy_order=how == "strategy",
                             in_argilla=sent))
