"""The Review page marks each sentence "in Argilla", "answered by" or "not sent", states
the push policy, and its send button offers only sentences not in Argilla yet."""

from __future__ import annotations

from appkit import no_exception, open_page
from test_app_model_pages import _order, folder, store  # noqa: F401 (fixtures)

from concner.argilla.records import dataset_name


def _marks(at) -> dict[str, str]:
    return {c.value.split("`")[1]: c.value.rsplit(" · ", 1)[1] for c in at.caption
            if c.value.startswith("`pool-")}


def test_review_marks_what_is_in_argilla_and_sends_the_rest(store):  # noqa: F811
    from concner.argilla.sync import record_pushed

    at = open_page("review", project="demo")
    no_exception(at)
    shown = _order(at)
    assert len(shown) > 3
    assert set(_marks(at).values()) == {"not sent"}
    assert any("keeps the next 100 sentences in ask order" in c.value for c in at.caption)
    langs = {s.id: s.lang for s in store.sentences("demo", role="target")}
    first = shown[:2]
    for sid in first:
        record_pushed(store, "demo", dataset_name("demo", "target", langs[sid]), "ds", {sid: "d"})
    at = open_page("review", project="demo")
    no_exception(at)
    marks = _marks(at)
    assert [marks[sid] for sid in first] == ["in Argilla", "in Argilla"]
    assert {marks[sid] for sid in shown[2:]} == {"not sent"}
    send = next(b for b in at.button if b.label.startswith("Send "))
    batch = int(send.label.split()[1])
    assert batch == min(len(shown) - 2, 20)
    next(s for s in at.selectbox if s.label == "Status").set_value("not sent")
    at.run()
    assert _order(at) == shown[2:]
