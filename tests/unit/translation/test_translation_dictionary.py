"""The dictionary backend: a hand-built dictd file, and the real FreeDict dictionaries."""

from __future__ import annotations

import gzip
import json

import pytest
from translation_support import require_freedict

from concner.cli import main
from concner.errors import ServiceUnavailable
from concner.labels import OUTSIDE
from concner.sentence import Sentence
from concner.translation.base import Status
from concner.translation.dictionary import DictdDictionary, DictionaryTranslator, decode_b64

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n: int) -> str:
    """dictd base64 digits, written independently of the code under test."""
    digits = ""
    while True:
        digits = ALPHABET[n % 64] + digits
        n //= 64
        if n == 0:
            return digits


ENTRIES = [
    ("house", "house /haʊs/\nHaus <neut>\n      \"build a house\"  - ein Haus bauen\n"),
    ("in", "inch /ɪntʃ/ (in /ɪn/)\nZoll <neut>\n"),       # indexed under "in" but is "inch"
    ("in", "in /ɪn/\nin ([wo?+ dat]) <prep>\n"),
    ("was", "was /wɒz/\nbefand sich\n   Synonyms: {was located}\n"),
    ("lives", "lives\n 1.  [bio.] lebt, wohnt\n"),
    ("the", "the\n  etw. das, der\n"),                      # placeholder first, then "der"
    ("WHO", "WHO\nWeltgesundheitsorganisation\n"),
    ("who", "who\nwer\n"),
    ("big", "big\nv.z. uitleg van iets heel anders\n"),     # an explanation, not a sense
]


@pytest.fixture()
def dict_dir(tmp_path):
    data = b""
    index = []
    for head, body in ENTRIES:
        raw = body.encode("utf-8")
        index.append(f"{head}\t{b64(len(data))}\t{b64(len(raw))}")
        data += raw
    (tmp_path / "freedict-eng-deu.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "freedict-eng-deu.dict.dz", "wb") as out:
        out.write(data)
    return tmp_path


def s(sid: str, tokens: str, tags: str) -> Sentence:
    return Sentence.from_tokens(sid, "en", tokens.split(), tags.split())


def test_base64_offsets_and_first_senses(dict_dir):
    assert decode_b64(b64(1090 * 64 + 17)) == 1090 * 64 + 17
    d = DictdDictionary(dict_dir / "freedict-eng-deu.index", dict_dir / "freedict-eng-deu.dict.dz")
    assert d.first_sense("house") == "Haus"
    assert d.first_sense("in") == "in"          # "inch" entry skipped, markup stripped
    assert d.first_sense("was") == "befand sich"
    assert d.first_sense("lives") == "lebt"     # numbering and [domain] removed
    assert d.first_sense("the") == "der"        # placeholder candidate skipped
    assert d.first_sense("who") == "wer"        # case-sensitive: not WHO's entry
    assert d.first_sense("The") == "der"        # lower-cased form looked up first
    assert d.first_sense("big") is None         # explanations are not translations
    assert d.first_sense("unknownword") is None


def test_entities_kept_and_tags_aligned_one_to_one(dict_dir):
    source = s("x1", "The house in Mexico City was big , said Will Smith .",
               "O O O B-LOC I-LOC O O O O B-PER I-PER O")
    pair = DictionaryTranslator(directory=dict_dir).translate([source], "de")[0]
    t = pair.translated
    assert pair.status is Status.OK and t.lang == "de" and t.meta["source_id"] == "x1"
    assert len(t.tags) == len(t.tokens)
    src_entities = [(source.tokens[i], tag) for i, tag in enumerate(source.tags) if tag != OUTSIDE]
    out_entities = [(t.tokens[i], tag) for i, tag in enumerate(t.tags) if tag != OUTSIDE]
    assert out_entities == src_entities
    assert t.tokens[0] == "Der"                 # sentence-initial casing preserved
    assert "Haus" in t.tokens and "house" not in t.tokens
    # "was" -> two O tokens
    i = t.tokens.index("befand")
    assert t.tokens[i + 1] == "sich" and t.tags[i:i + 2] == [OUTSIDE, OUTSIDE]
    assert len(t.tokens) == len(source.tokens) + 1
    assert t.meta["translated_words"] == 4 and t.meta["candidate_words"] == 6


def test_share_is_seeded_and_zero_share_copies(dict_dir):
    source = s("x2", "the house the house the house the house in the house",
               "O O O O O O O O O O O")
    none = DictionaryTranslator(directory=dict_dir, share=0.0).translate([source], "de")[0]
    assert none.translated.tokens == source.tokens
    half = DictionaryTranslator(directory=dict_dir, share=0.5, seed=3)
    a = half.translate([source], "de")[0].translated.tokens
    b = half.translate([source], "de")[0].translated.tokens
    assert a == b
    changed = sum(1 for x, y in zip(a, source.tokens) if x != y)
    assert 0 < changed < len(source.tokens)


def test_missing_dictionary_names_the_package(tmp_path):
    with pytest.raises(ServiceUnavailable, match="dict-freedict-eng-fra"):
        DictionaryTranslator(directory=tmp_path).translate([s("x", "a", "O")], "fr")


@pytest.mark.parametrize("lang,pair", [("de", "eng-deu"), ("nl", "eng-nld"),
                                       ("ru", "eng-rus"), ("pl", "eng-pol")])
def test_real_freedict_dictionaries(lang, pair):
    require_freedict(pair)
    source = s("r1", "The city of Berlin has a new house and a big garden .",
               "O O O B-LOC O O O O O O O O O")
    pair_out = DictionaryTranslator().translate([source], lang)[0]
    t = pair_out.translated
    assert [tok for tok, tag in zip(t.tokens, t.tags) if tag != OUTSIDE] == ["Berlin"]
    assert t.tokens != source.tokens            # something was translated
    assert t.meta["translated_words"] > 0


def test_cli_dictionary_writes_only_usable_pairs(dict_dir, tmp_path, capsys):
    src = tmp_path / "en.tsv"
    src.write_text("The\tO\nhouse\tO\nin\tO\nParis\tB-LOC\n\nWill\tB-PER\nSmith\tI-PER\n",
                   encoding="utf-8")
    out = tmp_path / "de.jsonl"
    toml = tmp_path / "c.toml"
    toml.write_text(f'[translation]\ndictionary_dir = "{dict_dir}"\n', encoding="utf-8")
    code = main(["translate", "--backend", "dictionary", "--target", "de", "--in", str(src),
                 "--out", str(out), "--config", str(toml), "--no-progress"])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 and rows[0]["tokens"][:2] == ["Der", "Haus"]
    assert rows[0]["meta"]["source_id"] and rows[0]["meta"]["projection"] == "ok"
    summary = capsys.readouterr().out
    assert "2 sentences" in summary and "ok 2" in summary and "failed 0" in summary


def test_malformed_index_names_file_and_line(tmp_path):
    from concner.errors import DataFormatError

    data = tmp_path / "x.dict.dz"
    with gzip.open(data, "wb") as out:
        out.write(b"house\nHaus\n")
    index = tmp_path / "x.index"
    index.write_text("house\tA\tL\nbroken line without tabs\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        DictdDictionary(index, data)
    assert info.value.line == 2 and info.value.path == str(index)
    index.write_text("apple\tA\tL\nhouse\t!!\tL\n", encoding="utf-8")
    d = DictdDictionary(index, data)
    with pytest.raises(DataFormatError) as info:
        d.first_sense("house")
    assert info.value.line == 2
