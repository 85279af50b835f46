"""Quick review's decisions on predicted spans: accept, reject, relabel, undo; the tags
they give are IOB2-valid whatever the order of decisions."""

from __future__ import annotations

import itertools

import pytest

from concner.errors import LabelSchemaError
from concner.labels import LabelSchema, iob2_errors
from concner.ui.quick_review import QuickReview, label_keys, queue, token_spans

LABELS = ["PER", "ORG", "LOC"]
TOKENS = ["Ana", "Pérez", "works", "at", "Acme", "Corp", "in", "Lima"]
PREDICTED = ["B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC"]


def _review() -> QuickReview:
    return QuickReview(list(TOKENS), list(PREDICTED), list(LABELS))


def test_spans_are_read_over_tokens():
    assert [(s.start, s.end, s.label) for s in token_spans(PREDICTED)] == \
        [(0, 2, "PER"), (4, 6, "ORG"), (7, 8, "LOC")]
    # a stray I- starts an entity, and two adjacent B- are two entities
    assert [(s.start, s.end) for s in token_spans(["I-PER", "B-LOC", "B-LOC"])] == \
        [(0, 1), (1, 2), (2, 3)]


def test_accept_reject_and_relabel_each_change_only_their_span():
    r = _review()
    assert r.current == 0
    r.accept()
    r.reject()
    assert r.current == 2 and not r.done
    r.relabel("ORG")
    assert r.done and r.current is None
    assert r.tags() == ["B-PER", "I-PER", "O", "O", "O", "O", "O", "B-ORG"]
    assert r.summary() == "1 accepted, 1 rejected, 1 relabelled"
    with pytest.raises(LabelSchemaError, match="decided already"):
        r.accept()


def test_undo_takes_back_the_last_decision_and_undecided_spans_keep_the_prediction():
    r = _review()
    assert r.tags() == PREDICTED
    r.reject()
    assert r.tags()[:2] == ["O", "O"]
    r.undo()
    assert r.current == 0 and r.tags() == PREDICTED
    r.undo()  # nothing left to take back
    assert r.current == 0


def test_every_sequence_of_decisions_gives_valid_tags():
    schema = LabelSchema(LABELS)
    # adjacent spans of one type: relabelling must not merge or split them
    tokens, predicted = ["a", "b", "c", "d"], ["B-PER", "B-PER", "I-PER", "B-LOC"]
    choices = ["accept", "reject", *[("relabel", lab) for lab in LABELS]]
    for plan in itertools.product(choices, repeat=3):
        r = QuickReview(tokens, predicted, LABELS)
        for step in plan:
            r.accept() if step == "accept" else r.reject() if step == "reject" \
                else r.relabel(step[1])
        tags = r.tags()
        schema.check_tags(tags)
        assert iob2_errors(tags) == []
        kept = [d for d in r.decisions if d is not None]
        assert [s.label for s in token_spans(tags)] == kept


def test_bad_input_says_what_is_wrong():
    with pytest.raises(LabelSchemaError, match="unknown entity type 'DATE'"):
        _review().relabel("DATE")
    with pytest.raises(LabelSchemaError, match="3 predicted tags for 2 tokens"):
        QuickReview(["a", "b"], ["O", "O", "O"], LABELS)


def test_label_keys_are_digits_in_label_order_and_the_queue_skips_labelled():
    keys = label_keys([f"L{i}" for i in range(12)])
    assert list(keys.values()) == [str(i) for i in range(1, 10)] and "L9" not in keys

    class Row:
        def __init__(self, corrected):
            self.corrected = corrected

    rows = [Row(None), Row(["O"]), Row(None), Row(None)]
    assert queue(rows, 2) == [rows[0], rows[2]]
