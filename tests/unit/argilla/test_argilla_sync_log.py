"""The sync's log: one INFO line per dataset per sync, with what it read and took."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from concner.argilla.records import PulledAnnotation, PullResult, PushReport, dataset_name
from concner.argilla.sync import sync_project
from concner.sentence import Sentence
from concner.store import Store


class FakeArgilla:
    """Stands in for ArgillaIO: one answer per dataset, a few records 'read' per call."""

    def __init__(self):
        self.stats = {"requests": 0, "records_read": 0}

    def ensure_dataset(self, project, role, lang, labels, **kw):
        return dataset_name(project, role, lang)

    def dataset_id(self, name):
        return f"id-{name}"

    def push(self, name, sentences, predictions=None, **kw):
        self.stats["requests"] += 2
        return PushReport(name, created=len(sentences))

    def pull(self, name, sentences, since=None, **kw):
        self.stats["requests"] += 3
        self.stats["records_read"] += 7
        first = min(sentences)
        sent = sentences[first]
        ann = PulledAnnotation(first, sent.lang, ["O"] * len(sent.tokens), "ann", datetime.now(UTC),
                               0, name)
        return PullResult(name, annotations=[ann], cursor='{"t": null, "seen": []}')


def test_one_info_line_per_dataset_with_records_answers_and_seconds(tmp_path, caplog):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create_project("logs", source_lang="en", target_langs=["sw", "hi"],
                         entity_types=["PER"], encoder="tiny")
    for role, lang in (("source", "en"), ("target", "sw"), ("target", "hi")):
        store.import_sentences("logs", [Sentence.from_tokens(f"{lang}{i}", lang, ["a", "b"])
                                        for i in range(3)], role=role, split="pool")
    caplog.set_level(logging.DEBUG)
    reports = sync_project(store, "logs", FakeArgilla())
    lines = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == len(reports) == 3
    for line, rep in zip(lines, reports):
        text = line.getMessage()
        assert rep.dataset in text and "7 records read" in text
        assert "1 new or changed answers" in text and "3 records pushed" in text
        assert text.rstrip().endswith("s") and f"{rep.seconds:.2f}s" in text
    assert store.annotation_count("logs") == 3
