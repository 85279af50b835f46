"""The Quick review page: the highest-ranked sentence first, one decision per predicted
span with the buttons (the keys press the same buttons), stored as the user's
correction once every span is decided."""

from __future__ import annotations

from appkit import no_exception, open_page
from test_app_model_pages import folder, store  # noqa: F401 (fixtures)


def _caption(at) -> str:
    return next(c.value for c in at.caption if " in the ask order" in c.value)


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def test_quick_review_stores_decisions_as_the_users_correction(store):  # noqa: F811
    mv = store.active_model_version("demo")
    target = {s.meta["db_id"]: s for s in store.sentences("demo", role="target")}
    preds = sorted((p for p in store.predictions(mv.id) if p.sentence_id in target
                    and target[p.sentence_id].tags is None), key=lambda p: p.al_rank)
    at = open_page("quick_review", project="demo")
    no_exception(at)
    first = target[preds[0].sentence_id]
    assert _caption(at).startswith(f"`{first.id}`")  # the first in the ask order
    assert _button(at, "Reject").disabled  # no author yet
    at.text_input[0].set_value("lena")
    at.run()
    # walk to a sentence with predicted spans (skipping the others)
    while "span 1 of" not in _caption(at):
        _button(at, "Skip sentence").click()
        at.run()
        no_exception(at)
    sid = _caption(at).split("`")[1]
    sent = next(s for s in target.values() if s.id == sid)
    pred = next(p for p in preds if p.sentence_id == sent.meta["db_id"])
    n_spans = _caption(at).split("span 1 of ")[1].split(":")[0]
    before = store.annotation_count("demo")
    _button(at, "Reject").click()
    at.run()
    for _ in range(int(n_spans) - 1):
        _button(at, "Accept").click()
        at.run()
    no_exception(at)
    assert store.annotation_count("demo") == before + 1
    assert any(f"Stored {sid} as lena's correction" in s.value for s in at.success)
    (labelled,) = [s for s in store.sentences("demo", role="target", labelled=True)
                   if s.id == sid]
    first_span = next(i for i, t in enumerate(pred.tags) if t != "O")
    assert labelled.tags[first_span] == "O" and labelled.tags != list(pred.tags)
    assert store.label_authors([sent.meta["db_id"]])[sent.meta["db_id"]] == ["lena"]
    assert not _caption(at).startswith(f"`{sid}`")  # on to the next sentence
    # each decision button carries its single key
    assert _button(at, "Accept").proto.shortcut.upper() == "A"
    assert _button(at, "Reject").proto.shortcut.upper() == "X"
