"""The file backend: user translations in JSONL/TSV, tagged or with markers; bad input."""

from __future__ import annotations

import json

import pytest

from concner.errors import DataFormatError
from concner.sentence import Sentence
from concner.translation.base import Status
from concner.translation.file import FileTranslator

SOURCES = [
    Sentence.from_tokens("s1", "en", ["He", "lives", "in", "New", "York", "City", "."],
                         ["O", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"]),
    Sentence.from_tokens("s2", "en", ["Anna", "met", "Bob", "."], ["B-PER", "O", "B-PER", "O"]),
]


def write(tmp_path, name: str, lines: list[str]):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def spans(sentence):
    return [(sentence.text[sp.start:sp.end], sp.label) for sp in sentence.spans]


def test_jsonl_marked_text_and_tagged_tokens(tmp_path):
    path = write(tmp_path, "es.jsonl", [
        json.dumps({"source_id": "s1", "text": 'Vive en <b id="e1">Ciudad</b> de '
                                               '<b id="e1">Nueva York</b>.'}),
        json.dumps({"source_id": "s2", "tokens": ["Anna", "conoció", "a", "Bob"],
                    "ner_tags": ["B-PER", "O", "O", "B-PER"], "lang": "es"}),
    ])
    pairs = FileTranslator(path).translate(SOURCES, "es")
    assert pairs[0].status is Status.REPAIRED
    assert spans(pairs[0].translated) == [("Ciudad de Nueva York", "LOC")]
    assert pairs[1].status is Status.OK
    assert spans(pairs[1].translated) == [("Anna", "PER"), ("Bob", "PER")]
    assert [p.translated.meta["source_id"] for p in pairs] == ["s1", "s2"]


def test_tsv_id_text_and_missing_translation_fails(tmp_path):
    path = write(tmp_path, "es.tsv", ['s2\t<b id="e1">Anna</b> conoció a <b id="e2">Bob</b>.'])
    pairs = FileTranslator(path).translate(SOURCES, "es")
    assert pairs[0].status is Status.FAILED and "no translation" in pairs[0].reason
    assert pairs[1].status is Status.OK
    assert spans(pairs[1].translated) == [("Anna", "PER"), ("Bob", "PER")]


def test_conll_tsv_in_source_order(tmp_path):
    path = write(tmp_path, "es.tsv", ["Vive\tO", "en\tO", "Nueva\tB-LOC", "York\tI-LOC", "",
                                      "Anna\tB-PER", "conoció\tO", "a\tO", "Bob\tB-PER"])
    pairs = FileTranslator(path).translate(SOURCES, "es")
    assert [p.status for p in pairs] == [Status.OK, Status.OK]
    assert pairs[0].translated.tokens == ["Vive", "en", "Nueva", "York"]


def test_entity_missing_from_user_text_fails_the_pair(tmp_path):
    path = write(tmp_path, "es.jsonl", [json.dumps({"text": "Vive en la gran ciudad."}),
                                        json.dumps({"text": '<b id="e1">Anna</b> y <b id="e2">Bob</b>'})])
    pairs = FileTranslator(path).translate(SOURCES, "es")
    assert pairs[0].status is Status.FAILED and "e1" in pairs[0].reason
    assert pairs[1].usable


@pytest.mark.parametrize("name,lines,bad_line,fragment", [
    ("a.jsonl", ['{"source_id": "s1", "text": "ok"}', '{"source_id": "s2", "text": '], 2,
     "not valid JSON"),
    ("b.jsonl", ['{"source_id": "s1", "words": ["x"]}'], 1, '"text"'),
    ("c.jsonl", ['{"source_id": "s1", "tokens": ["a", "b"], "ner_tags": ["O"]}'], 1,
     "one IOB2 tag per token"),
    ("d.jsonl", ['{"source_id": "s1", "tokens": ["a"], "ner_tags": ["I-LOC"]}'], 1, "IOB2"),
    ("e.jsonl", ['', '{"source_id": "s1", "text": "Vive en <b id=\\"e1\\">Nueva York."}'], 2,
     "never closed"),
    ("f.jsonl", ['{"source_id": "s9", "text": "x"}'], 1, "not among the source"),
    ("g.jsonl", ['{"source_id": "s1", "text": "x"}', '{"source_id": "s1", "text": "y"}'], 2,
     "already used"),
    ("h.jsonl", ['{"source_id": "s1", "text": "x"}', '{"text": "y"}'], 2, "on every line"),
    ("i.jsonl", ['{"source_id": "s1", "text": "<b id=\\"e4\\">x</b>"}'], 1, "e4"),
    ("j.jsonl", ['{"source_id": "s1", "text": "x", "lang": "fr"}'], 1, "target language"),
    ("k.tsv", ["s1\tVive en Nueva York", "s2 without a tab"], 2, "source_id<TAB>"),
    ("l.tsv", ["Vive\tO", "en\tO", "York\tB-LOC\textra"], 3, "token<TAB>IOB2 tag"),
    ("m.jsonl", ['{"text": "a"}', '{"text": "b"}', '{"text": "c"}'], 3, "3 translations"),
])
def test_malformed_input_names_file_and_line(tmp_path, name, lines, bad_line, fragment):
    path = write(tmp_path, name, lines)
    with pytest.raises(DataFormatError) as info:
        FileTranslator(path).translate(SOURCES, "es")
    assert info.value.path == str(path)
    assert info.value.line == bad_line
    assert fragment in str(info.value)


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataFormatError) as info:
        FileTranslator(path).translate(SOURCES, "es")
    assert info.value.line == 2
    with pytest.raises(DataFormatError):
        FileTranslator(tmp_path / "nope.jsonl")
