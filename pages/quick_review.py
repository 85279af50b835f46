"""Quick review: the highest-ranked unlabelled sentences one at a time; accept, reject or
relabel each predicted span with one key (or its button); the result is stored as your
correction. Logic: concner.ui.quick_review."""

import streamlit as st

from concner.active.ask_order import review_rows
from concner.errors import ConcnerError
from concner.labels import LabelSchema
from concner.ui import quick_review as qr
from concner.ui.context import ensure_navigation, get_config, get_store, require_project
from concner.ui.highlight import highlight_html, legend_html
from concner.ui.review import SIDES, sort_rows

ensure_navigation()
st.title("Quick review")
store, config = get_store(), get_config()
project = require_project(store)
schema = LabelSchema.from_dict(project.label_schema)
labels = list(schema.entity_types)
st.caption("The highest-ranked sentences nobody has labelled, one at a time: decide each "
           f"predicted span with one key — **{qr.ACCEPT_KEY}** accept, "
           f"**{qr.REJECT_KEY}** reject, "
           "a digit relabels, **U** undoes, **S** skips the sentence. When the last span is "
           "decided the sentence is stored as your correction (like an Argilla answer; the "
           "next retrain counts it). Missed entities: correct the sentence in Argilla.")

active = store.active_model_version(project.name)
if active is None:
    st.info("No active model yet: start a retrain on the Training page.")
    st.stop()

author = st.text_input("Your name (stored as the author of your decisions)", key="quick_author")
c1, c2 = st.columns(2)
side = c1.radio("Sentences", list(SIDES), format_func=SIDES.get, horizontal=True,
                key="quick_side")
size = int(c2.number_input("Sentences to review", min_value=1, max_value=500,
                           value=config.active.batch_size, key="quick_size"))
versions = sorted(store.model_versions(project.name, include_deleted=True), key=lambda v: -v.version)
rows = review_rows(store.sentences(project.name, role=side),
                   [(v.version, store.predictions(v.id)) for v in versions])
state = st.session_state.setdefault(f"quick-{project.name}-{side}",
                                    {"skipped": [], "decisions": {}, "saved": []})
todo = [r for r in qr.queue(sort_rows(rows, "strategy"), size + len(state["skipped"]))
        if r.sentence.id not in state["skipped"]][:size]
for ok, note in state["saved"][-1:]:
    (st.success if ok else st.error)(note)
if not author.strip():
    st.warning("Type your name in 'Your name' to decide: it is stored as the author.")
if not todo:
    st.info("Nothing left to review here: every one of the highest-ranked sentences is "
            "labelled or skipped.")
    st.stop()

row = todo[0]
sent = row.sentence
decisions = state["decisions"].setdefault(sent.id, [])
review = qr.QuickReview(list(sent.tokens), list(row.tags), labels)
review.decisions = list(decisions)
st.markdown(legend_html(labels), unsafe_allow_html=True)
st.markdown(highlight_html(sent.text, schema.tags_to_spans(review.tags(), sent.offsets),
                           sent.lang, sentence_id=sent.id), unsafe_allow_html=True)
where = (f"span {review.current + 1} of {len(review.spans)}: "
         f"**{qr.span_text(sent.text, sent.offsets, review.spans[review.current])}**, predicted "
         f"{review.spans[review.current].label}" if not review.done
         else "no predicted entity" if not review.spans else "every span decided")
st.caption(f"`{sent.id}` · {sent.lang} · #{row.al_rank or '-'} in the ask order · {where} · "
           f"{len(todo)} to go")


def _store_if_done() -> None:
    if not review.done:
        return
    try:
        qr.save(store, project.name, sent.id, review, author)
    except ConcnerError as exc:
        state["saved"].append((False, f"Not stored: {exc}"))
        review.undo()
        decisions[:] = review.decisions
        return
    note = f"Stored {sent.id} as {author.strip()}'s correction ({review.summary()})."
    state["saved"].append((True, note))
    state["decisions"].pop(sent.id, None)


def _decide(action: str, label: str | None = None) -> None:
    if action == "accept" and review.spans:
        review.accept()
    elif action == "reject":
        review.reject()
    elif action == "relabel":
        review.relabel(label)
    decisions[:] = review.decisions
    _store_if_done()


def _undo() -> None:
    review.undo()
    decisions[:] = review.decisions


def _skip() -> None:
    state["skipped"].append(sent.id)


named = bool(author.strip())
open_span = named and not review.done
keys = qr.label_keys(labels)
cols = st.columns(4 + len(labels))
cols[0].button("Accept" if review.spans else "Confirm: no entities", shortcut=qr.ACCEPT_KEY,
               on_click=_decide, args=("accept",), type="primary",
               disabled=not named or (bool(review.spans) and not open_span))
cols[1].button("Reject", shortcut=qr.REJECT_KEY, on_click=_decide, args=("reject",),
               disabled=not open_span)
for col, lab in zip(cols[2:], labels):
    col.button(f"Relabel {lab}", shortcut=keys.get(lab), on_click=_decide,
               args=("relabel", lab), disabled=not open_span)
cols[-2].button("Undo", shortcut=qr.UNDO_KEY, on_click=_undo, disabled=not review.decisions)
cols[-1].button("Skip sentence", shortcut=qr.SKIP_KEY, on_click=_skip)
