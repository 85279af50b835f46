"""Tags <-> character spans, IOB2 validation and repair."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concner.errors import LabelSchemaError
from concner.labels import LabelSchema, Span, iob2_errors, repair_iob2, spans_to_tags, tags_to_spans
from concner.sentence import Sentence, join_tokens, tokenize_text

TYPES = ["PER", "ORG", "LOC"]
SCHEMA = LabelSchema(TYPES)

# Tokens with emoji, combining marks, right-to-left scripts and zero-width joiners.
TOKEN_POOL = ["Paris", "é", "e\u0301", "👩\u200d💻", "🇫🇷", "القاهرة", "שלום", "北京", "x", "Ñandú",
              "a\u200bb", "क्षत्रिय", "ქართული", "🙂🙂"]


@st.composite
def iob2_sentences(draw):
    n = draw(st.integers(min_value=1, max_value=12))
    tokens = draw(st.lists(st.sampled_from(TOKEN_POOL), min_size=n, max_size=n))
    tags, prev = [], None
    for _ in range(n):
        choice = draw(st.sampled_from(["O", "B", "I"]))
        etype = draw(st.sampled_from(TYPES))
        if choice == "I" and prev is not None:
            tags.append(f"I-{prev}")
        elif choice == "O":
            tags.append("O")
            prev = None
            continue
        else:
            tags.append(f"B-{etype}")
            prev = etype
    joiner = draw(st.sampled_from([" ", ""]))
    return tokens, tags, joiner


@settings(max_examples=300, deadline=None)
@given(iob2_sentences())
def test_tags_to_spans_and_back_is_identity(example):
    tokens, tags, joiner = example
    text, offsets = join_tokens(tokens, joiner)
    assert iob2_errors(tags) == []
    spans = tags_to_spans(tags, offsets)
    for span in spans:
        assert text[span.start:span.end].startswith(tokens[[o[0] for o in offsets].index(span.start)])
    if joiner == " ":
        back, snapped = spans_to_tags(spans, offsets)
        assert back == tags and snapped == 0
    else:
        # Without separators adjacent different-type entities still round-trip exactly.
        assert spans_to_tags(spans, offsets)[0] == tags


def test_span_offsets_are_code_points_with_emoji_and_rtl():
    sent = Sentence.from_tokens("s1", "ar", ["زار", "👩\u200d💻", "القاهرة"], ["O", "O", "B-LOC"])
    (span,) = sent.spans
    assert sent.text[span.start:span.end] == "القاهرة"
    assert span.label == "LOC"


def test_invalid_iob2_detected_and_repaired():
    tags = ["O", "I-PER", "I-PER", "B-ORG", "I-LOC"]
    problems = iob2_errors(tags)
    assert [i for i, _ in problems] == [1, 4]
    fixed, n = repair_iob2(tags)
    assert fixed == ["O", "B-PER", "I-PER", "B-ORG", "B-LOC"] and n == 2
    with pytest.raises(LabelSchemaError, match="invalid IOB2 at token 2"):
        SCHEMA.check_tags(tags)


def test_unknown_label_and_non_iob_tag_rejected():
    with pytest.raises(LabelSchemaError, match="unknown label 'B-MISC'"):
        SCHEMA.check_tags(["B-MISC"])
    with pytest.raises(LabelSchemaError, match="not IOB2"):
        SCHEMA.check_tags(["PER"])
    with pytest.raises(LabelSchemaError, match="unknown label"):
        SCHEMA.encode(["O", "B-DATE"])


def test_schema_ids_and_serialisation():
    assert SCHEMA.tags == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    assert SCHEMA.decode(SCHEMA.encode(["B-LOC", "I-LOC", "O"])) == ["B-LOC", "I-LOC", "O"]
    assert LabelSchema.from_dict(SCHEMA.to_dict()) == SCHEMA
    assert LabelSchema.from_tags(["B-LOC", "O", "B-PER", "I-ORG"]).tags == SCHEMA.tags
    with pytest.raises(LabelSchemaError):
        LabelSchema(["PER", "PER"])
    with pytest.raises(LabelSchemaError):
        LabelSchema([])


def test_spans_off_token_boundaries_snap_or_raise():
    _text, offsets = join_tokens(["New", "York", "City"])
    with pytest.raises(LabelSchemaError, match="token boundaries"):
        spans_to_tags([Span(1, 8, "LOC")], offsets)
    tags, snapped = spans_to_tags([Span(1, 8, "LOC")], offsets, snap=True)
    assert tags == ["B-LOC", "I-LOC", "O"] and snapped == 1
    with pytest.raises(LabelSchemaError, match="overlaps"):
        spans_to_tags([Span(0, 8, "LOC"), Span(4, 13, "ORG")], offsets)


def test_decode_valid_repairs_model_output():
    assert SCHEMA.decode_valid([2, 2, 0, 4]) == ["B-PER", "I-PER", "O", "B-ORG"]


@pytest.mark.parametrize(
    "text,lang,expected",
    [
        ("Hello, world!", "en", ["Hello", ",", "world", "!"]),
        ("北京是中国的首都", "zh", list("北京是中国的首都")),
        ("زرت القاهرة 🙂", "ar", ["زرت", "القاهرة", "🙂"]),
        ("Café\u0301 l'été", "fr", ["Café\u0301", "l'été"]),
    ],
)
def test_tokenize_text(text, lang, expected):
    tokens, offsets = tokenize_text(text, lang)
    assert tokens == expected
    assert [text[s:e] for s, e in offsets] == tokens
