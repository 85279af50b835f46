"""The app's view helpers without Streamlit: highlighting (RTL, escaping), the training
config editor's validation, count and worker summaries, upload parsing."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from concner.errors import ConfigError, DataFormatError
from concner.labels import LabelSchema, Span
from concner.ui.highlight import direction, highlight_html, side_by_side_html
from concner.ui.training_form import merge_form, parse_toml, to_toml, validate_overrides
from concner.ui.uploads import parse_upload
from concner.ui.views import count_summary, worker_status

SCHEMA = LabelSchema(["PER", "ORG", "LOC"])


def test_highlight_escapes_text_and_marks_entities_with_scores():
    text = "<b>Ana</b> & Bob in Lima"
    html = highlight_html(text, [Span(0, 10, "PER", 0.876), Span(20, 24, "LOC")], "es",
                          sentence_id='s"1')
    assert "<b>" not in html and "&lt;b&gt;Ana&lt;/b&gt;" in html and "&amp; Bob" in html
    assert html.count('<mark class="concner-ent"') == 2
    assert 'data-label="PER"' in html and "PER 0.88" in html and 'data-sentence="s&quot;1"' in html
    assert 'dir="auto"' in html


@pytest.mark.parametrize("lang,expected", [("ar", "rtl"), ("he", "rtl"), ("fa", "rtl"),
                                           ("ur", "rtl"), ("en", "auto"), ("zh", "auto"),
                                           (None, "auto")])
def test_direction_per_language(lang, expected):
    assert direction(lang) == expected


def test_highlight_rtl_keeps_text_order_and_refuses_bad_spans():
    text = "زار محمد القاهرة"
    html = highlight_html(text, [Span(4, 8, "PER")], "ar")
    assert html.startswith('<div class="concner-sent" dir="rtl" lang="ar"')
    assert html.index("زار") < html.index("محمد") < html.index("القاهرة")
    with pytest.raises(ValueError, match="overlaps"):
        highlight_html(text, [Span(0, 8, "PER"), Span(4, 16, "LOC")], "ar")
    with pytest.raises(ValueError, match="outside"):
        highlight_html(text, [Span(10, 99, "LOC")], "ar")


def test_side_by_side_lists_what_changed():
    text = "John visited Paris"
    html = side_by_side_html(text, [Span(0, 4, "PER")], [Span(0, 4, "PER"), Span(13, 18, "LOC")],
                             "en")
    assert "<b>added</b>: Paris (LOC)" in html and "removed" not in html
    same = side_by_side_html(text, [Span(0, 4, "PER")], [Span(0, 4, "PER")], "en")
    assert "accepted as predicted" in same


def test_training_overrides_validated_and_merged():
    with pytest.raises(ConfigError, match="training.learning_rate"):
        validate_overrides({"training": {"learning_rate": 3.0}})
    with pytest.raises(ConfigError, match="services"):
        validate_overrides({"services": {"database_url": "sqlite:///x"}})
    with pytest.raises(ConfigError, match="unknown key"):
        validate_overrides({"loss": {"lambda_xyz": 1.0}})
    with pytest.raises(ConfigError, match="TOML"):
        parse_toml("[training\nepochs = 2")
    # the TOML box holds the keys without a form field; a form field at its default sets
    # nothing (one that the box sets too is an error: tests/unit/ui/test_app_training.py)
    merged = merge_form({"training": {"seed": 1}, "model": {"dropout": 0.2}},
                        {("training", "epochs"): 5,  # the default: no override
                         ("loss", "lambda_lcl"): 0.2})
    assert merged == {"training": {"seed": 1}, "model": {"dropout": 0.2},
                      "loss": {"lambda_lcl": 0.2}}
    assert parse_toml(to_toml(merged)) == merged
    assert validate_overrides(merged) == merged


def test_count_summary_from_store_counts():
    counts = {"annotations": 40, "sentences": [
        {"role": "source", "split": "train", "lang": "en", "sentences": 30, "labelled": 30},
        {"role": "translation", "split": "train", "lang": "es", "sentences": 25, "labelled": 25},
        {"role": "target", "split": "dev", "lang": "es", "sentences": 10, "labelled": 10},
        {"role": "target", "split": "pool", "lang": "es", "sentences": 50, "labelled": 4},
        {"role": "target", "split": "pool", "lang": "ar", "sentences": 7, "labelled": 0},
    ]}
    assert count_summary(counts) == {"source labels": 30, "translations": 25, "target gold": 10,
                                     "target labels": 4, "pool": 53, "annotations": 40}


def test_worker_status_from_heartbeats():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fresh = SimpleNamespace(last_seen=now - timedelta(seconds=3), status="running", host="h",
                            current_run_id=7)
    stale = SimpleNamespace(last_seen=now - timedelta(seconds=300), status="running", host="h",
                            current_run_id=None)
    stopped = SimpleNamespace(last_seen=now, status="stopped", host="h", current_run_id=None)
    ok, text = worker_status([fresh], now)
    assert ok and "on run 7" in text
    ok, text = worker_status([stale, stopped], now)
    assert not ok and "no worker heartbeat for 300 s" in text
    assert worker_status([], now) == (False, ("no worker has ever started; start one with "
                                              "`concner worker` (or `concner up`)"))


def test_parse_upload_streams_and_reports_file_and_line():
    data = b"Ana\tB-PER\nvive\tO\n\nen\tO\nLima\tI-LOC\n"
    with pytest.raises(DataFormatError) as info:
        parse_upload(io.BytesIO(data), "es.tsv", len(data), kind="target_gold", lang="es",
                     schema=SCHEMA, max_mb=1)
    assert (info.value.path, info.value.line) == ("es.tsv", 5)
    ok = parse_upload(io.BytesIO(data), "es.tsv", len(data), kind="target_gold", lang="es",
                      schema=SCHEMA, max_mb=1, repair_iob=True)
    assert [s.tags for s in ok.sentences] == [["B-PER", "O"], ["O", "B-LOC"]]
    assert "1 stray I- tags repaired" in ok.summary
    with pytest.raises(DataFormatError, match="has labels but this upload is for unlabelled"):
        parse_upload(io.BytesIO(b'{"tokens": ["a"], "ner_tags": ["O"]}\n'), "x.jsonl", 40,
                     kind="target_text", lang="es", schema=SCHEMA, max_mb=1)
    with pytest.raises(DataFormatError, match="over the 1 MB limit"):
        parse_upload(io.BytesIO(b""), "big.txt", 2_000_000, kind="target_text", lang="es",
                     schema=SCHEMA, max_mb=1)
