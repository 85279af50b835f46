"""Marker insertion, reading, merging and repair on hand-made engine outputs."""

from __future__ import annotations

import pytest

from concner.sentence import Sentence
from concner.translation.base import ProjectedPair, Status, projection_rates, usable_pairs
from concner.translation.markers import mark, project, read_markers


def sent(tokens: str, tags: str, lang: str = "en", sid: str = "s1") -> Sentence:
    return Sentence.from_tokens(sid, lang, tokens.split(), tags.split())


def entities(s: Sentence) -> list[tuple[str, str]]:
    """(entity text, type) pairs of a tagged sentence."""
    return [(s.text[sp.start:sp.end], sp.label) for sp in s.spans]


NYC = sent("He lives in New York City .", "O O O B-LOC I-LOC I-LOC O")


def test_identity_round_trip_reproduces_tokens_and_tags():
    source = sent("Karl Ove Knausgård ( born 1968 ) works at Oslo University .",
                  "B-PER I-PER I-PER O O O O O O B-ORG I-ORG O")
    text, refs = mark(source, "html")
    assert [r.label for r in refs] == ["PER", "ORG"]
    pair = project(source, text, refs, "en")
    assert pair.status is Status.OK, pair.reason
    assert pair.translated.tokens == source.tokens
    assert pair.translated.tags == source.tags
    assert pair.translated.meta["source_id"] == source.id


def test_entity_split_in_two_by_function_word_is_merged():
    _, refs = mark(NYC, "html")
    output = 'Vive en <b id="e1">Ciudad</b> de <b id="e1">Nueva York</b>.'
    pair = project(NYC, output, refs, "es")
    assert pair.status is Status.REPAIRED
    assert "merged" in pair.reason
    assert entities(pair.translated) == [("Ciudad de Nueva York", "LOC")]
    assert pair.translated.lang == "es"


def test_entity_split_by_content_word_keeps_longest_piece():
    source = sent("the state-owned Main Line of Public Works", "O O B-ORG I-ORG I-ORG I-ORG I-ORG")
    _, refs = mark(source, "html")
    output = 'la <b id="e1">Línea Principal</b> paraestatal <b id="e1">de Obras Públicas</b>'
    pair = project(source, output, refs, "es")
    assert pair.status is Status.REPAIRED and "longest" in pair.reason
    # the longest piece, with the "de" Apertium moved into the marker trimmed off
    assert entities(pair.translated) == [("Obras Públicas", "ORG")] and "trimmed" in pair.reason
    assert "paraestatal" not in [t for t, _ in entities(pair.translated)]


def test_function_word_moved_into_marker_is_trimmed_unless_source_has_it():
    source = sent("Quakers and United Empire Loyalists", "O O B-ORG I-ORG I-ORG")
    _, refs = mark(source, "html")
    pair = project(source, 'Cuáqueros <b id="e1">e Imperio Unido Leales</b>', refs, "es")
    assert pair.status is Status.REPAIRED and "trimmed" in pair.reason
    assert entities(pair.translated) == [("Imperio Unido Leales", "ORG")]
    kept = sent("He saw The Hague", "O O B-LOC I-LOC")
    _, refs = mark(kept, "html")
    pair = project(kept, 'Vio <b id="e1">the Hague</b>', refs, "en")
    assert entities(pair.translated) == [("the Hague", "LOC")]


def test_entity_that_disappears_fails_and_is_not_usable():
    source = sent("Will Smith met Anna in Paris .", "B-PER I-PER O B-PER O B-LOC O")
    _, refs = mark(source, "html")
    output = 'Herrero conoció a <b id="e2">Anna</b> en <b id="e3">París</b>.'
    pair = project(source, output, refs, "es")
    assert pair.status is Status.FAILED
    assert "e1" in pair.reason and "Will Smith" in pair.reason
    assert pair.translated is None
    sources, translations = usable_pairs([pair])
    assert sources == [] and translations == []


def test_lost_marker_recovered_when_entity_text_is_verbatim():
    source = sent("Will Smith met Anna .", "B-PER I-PER O B-PER O")
    _, refs = mark(source, "html")
    output = 'Will Smith conoció a <b id="e2">Anna</b>.'
    pair = project(source, output, refs, "es")
    assert pair.status is Status.REPAIRED and "lost" in pair.reason
    assert entities(pair.translated) == [("Will Smith", "PER"), ("Anna", "PER")]


def test_duplicated_marker_and_unbalanced_markers():
    _, refs = mark(NYC, "html")
    unclosed = project(NYC, 'Vive en <b id="e1">Nueva York.', refs, "es")
    stray = project(NYC, 'Vive en Nueva York</b>.', refs, "es")
    nested = project(NYC, '<b id="e1">Vive <b id="e1">en</b></b>', refs, "es")
    unknown = project(NYC, 'Vive en <b id="e7">Nueva York</b>.', refs, "es")
    for pair in (unclosed, stray, nested, unknown):
        assert pair.status is Status.FAILED and pair.reason
    twice = project(NYC, '<b id="e1">Nueva York</b> es <b id="e1">Nueva York</b> y mucho más',
                    refs, "es")
    assert twice.status is Status.REPAIRED
    assert len(twice.translated.spans) == 1


def test_html_escaping_round_trips_special_characters():
    source = sent("AT&T beat <Foo> & Co in Texas", "B-ORG O O O O O B-LOC")
    text, _ = mark(source, "html")
    assert "&amp;" in text and "<Foo>" not in text
    plain, pieces = read_markers(text, "html")
    assert plain == "AT&T beat <Foo> & Co in Texas"
    assert [plain[s:e] for _, s, e in pieces] == ["AT&T", "Texas"]


def test_protected_types_travel_as_placeholders_and_come_back():
    source = sent("Will Smith visited Paris with Zx1q", "B-PER I-PER O B-LOC O B-PER")
    text, refs = mark(source, "html", protect=frozenset({"PER"}))
    placeholders = [r.placeholder for r in refs]
    assert placeholders[1] is None and placeholders[0] and placeholders[2]
    assert "Will Smith" not in text and "Paris" in text
    # the placeholder cannot collide with a word of the sentence
    assert all(p.lower() not in source.text.lower() for p in placeholders if p)
    engine = text.replace("visited", "visitó").replace("with", "con")
    pair = project(source, engine, refs, "es")
    assert pair.status is Status.OK
    assert entities(pair.translated) == [("Will Smith", "PER"), ("Paris", "LOC"), ("Zx1q", "PER")]
    gone = project(source, engine.replace(refs[0].placeholder, "Herrero"), refs, "es")
    assert gone.status is Status.FAILED and "Will Smith" in gone.reason


@pytest.mark.parametrize("tokens,tags,lang", [
    ("Ich 😀 liebe Berlin 🇩🇪 sehr", "O O O B-LOC O O", "de"),
    ("زار محمد القاهرة أمس", "O B-PER B-LOC O", "ar"),
    ("שלום ירושלים !", "O B-LOC O", "he"),
    ("e\u0301cole à Montre\u0301al", "O O B-LOC", "fr"),
])
def test_emoji_rtl_and_combining_marks_survive_the_marker_path(tokens, tags, lang):
    source = sent(tokens, tags, lang)
    for style in ("html", "bracket"):
        text, refs = mark(source, style)
        pair = project(source, text, refs, lang, style=style)
        assert pair.status is Status.OK, (style, pair.reason)
        assert entities(pair.translated) == entities(source)
        # the translation is re-tokenised (a flag emoji is two code points, two tokens)
        assert len(pair.translated.tags) == len(pair.translated.tokens)
        assert "".join(pair.translated.text.split()) == "".join(source.text.split())


def test_rtl_entity_split_and_merged():
    source = sent("ذهب إلى مدينة نيويورك", "O O B-LOC I-LOC", "ar")
    _, refs = mark(source, "html")
    output = 'ذهب إلى <b id="e1">نيويورك</b> و <b id="e1">سيتي</b> 🗽'
    pair = project(source, output, refs, "ar")
    assert pair.status is Status.REPAIRED
    assert entities(pair.translated) == [("نيويورك و سيتي", "LOC")]


def test_bracket_markers_in_order_and_reordered():
    source = sent("Anna visited Paris .", "B-PER O B-LOC O")
    text, refs = mark(source, "bracket")
    assert text == "[Anna] visited [Paris]."
    in_order = project(source, "[Anna] besuchte [Paris].", refs, "de", style="bracket")
    assert in_order.status is Status.OK
    assert entities(in_order.translated) == [("Anna", "PER"), ("Paris", "LOC")]
    swapped = project(source, "[Parigi] è stata visitata da [Anna].", refs, "it", style="bracket")
    assert swapped.status is Status.REPAIRED
    assert entities(swapped.translated) == [("Parigi", "LOC"), ("Anna", "PER")]
    lost = project(source, "Anna besuchte [Paris].", refs, "de", style="bracket")
    assert lost.status is Status.FAILED


def test_literal_brackets_in_source_do_not_become_markers():
    source = sent("[ citation ] by Anna", "O O O O B-PER")
    text, refs = mark(source, "bracket")
    assert text.count("[") == 1 and len(refs) == 1


def test_unlabelled_source_gets_untagged_translation_and_rates_group_by_language():
    source = Sentence.from_tokens("u1", "en", ["Hello", "world"])
    _, refs = mark(source, "html")
    assert refs == []
    pair = project(source, "Hola mundo", refs, "es")
    assert pair.status is Status.OK and pair.translated.tags is None
    bad = ProjectedPair(source, None, Status.FAILED, "x", "de")
    rates = projection_rates([pair, bad])
    assert rates["es"]["ok"] == 1.0 and rates["de"]["failed"] == 1.0
