"""Issue 17, annotation flow: what the Review page marks "in Argilla", "answered by" or
"not sent", which batch the send button takes, and that a batch sent while a sync runs
stays marked (the sync's cursor keeps it)."""

from __future__ import annotations

import json

import pytest

from concner.active.ask_order import ReviewRow
from concner.argilla.records import PullResult, PushReport, dataset_name
from concner.labels import Span
from concner.sentence import Sentence
from concner.ui.review import (
    STATUSES,
    argilla_mark,
    batch_to_send,
    filter_rows,
    meta_text,
)


def _row(i: int, corrected: bool = False, authors=()) -> ReviewRow:
    s = Sentence.from_tokens(f"s{i}", "de", ["Ana", "lebt"])
    return ReviewRow(s, ["B-PER", "O"], [Span(0, 3, "PER")], 0.5,
                     ["B-PER", "O"] if corrected else None, 1, authors=list(authors))


def test_each_sentence_is_marked_answered_in_argilla_or_not_sent():
    rows = [_row(0, corrected=True, authors=["ann1", "ann2"]), _row(1), _row(2)]
    marks = [argilla_mark(r, {"s0", "s1"}) for r in rows]
    assert marks == ["answered by ann1, ann2", "in Argilla", "not sent"]
    assert meta_text(rows[1], 1, strategy_order=False, in_argilla={"s1"}).endswith("· in Argilla")
    assert meta_text(rows[2], 1, strategy_order=False, in_argilla={"s1"}).endswith("· not sent")


def test_the_status_filter_splits_unlabelled_into_sent_and_not_sent():
    rows = [_row(0, corrected=True), _row(1), _row(2), _row(3)]
    sent = {"s0", "s1"}
    ids = {st: [r.sentence.id for r in filter_rows(rows, status=st, in_argilla=sent)]
           for st in STATUSES}
    assert ids == {"unlabelled": ["s1", "s2", "s3"], "not sent": ["s2", "s3"],
                   "in Argilla": ["s1"], "corrected": ["s0"], "all": ["s0", "s1", "s2", "s3"]}
    with pytest.raises(ValueError, match="unknown status"):
        filter_rows(rows, status="sent")


def test_the_send_button_adds_the_next_sentences_not_in_argilla_on_top():
    rows = [_row(i) for i in range(6)]
    batch, again = batch_to_send(rows, {"s0", "s1", "s3"}, 2)
    assert [r.sentence.id for r in batch] == ["s2", "s4"] and not again
    # all there already: the first ones again (their suggestions brought up to date)
    batch, again = batch_to_send(rows, {r.sentence.id for r in rows}, 2)
    assert [r.sentence.id for r in batch] == ["s0", "s1"] and again


class _Argilla:
    """An ArgillaIO stand-in whose pull runs ``during`` (a send from the app while the
    sync runs) and returns a cursor with the memo it was given."""

    def __init__(self, during=None):
        self.stats = {"requests": 0, "records_read": 0}
        self.during = during
        self.made: list[str] = []

    def dataset_exists(self, name):
        return name in self.made

    def ensure_dataset(self, project, role, lang, labels, **kw):
        self.made.append(dataset_name(project, role, lang))
        return self.made[-1]

    def dataset_id(self, name):
        return f"id-{name}"

    def push(self, name, sentences, predictions=None, *, memo=None, only_existing=False, **kw):
        if only_existing:  # nothing further down the order is in this "Argilla"
            return PushReport(name)
        memo.update((s.id, "digest") for s in sentences)
        return PushReport(name, created=len(sentences))

    def pull(self, name, sentences, since=None, *, pushed=None, **kw):
        if self.during:
            self.during()
        return PullResult(name, cursor=json.dumps({"t": None, "seen": [], "ds": self.dataset_id(name),
                                                   "pushed": dict(pushed or {})}))


def test_a_batch_sent_while_the_sync_runs_stays_marked_in_argilla(tmp_path):
    from concner.argilla.sync import record_pushed, sync_project
    from concner.store import Store
    from concner.ui.argilla_view import in_argilla

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="tiny")
    store.import_sentences("p", [Sentence.from_tokens(f"de{i}", "de", ["a"]) for i in range(5)],
                           role="target", split="pool")
    name = dataset_name("p", "target", "de")
    fake = _Argilla(during=lambda: record_pushed(store, "p", name, f"id-{name}", {"de4": "d"}))
    reports = sync_project(store, "p", fake, queue_size=2)
    project = store.get_project("p")
    assert in_argilla(store, project) == {"de0", "de1", "de4"}
    # no English sentence to ask: the source dataset was never made
    assert fake.made == [name] and reports[0].pushed == 0
