"""Export round trips: every format re-imports (through concner.corpus readers) with the same
tokens and tags; a DatasetDict export loads with datasets.load_from_disk with the right
features; bad input is refused before anything is written."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from concner import corpus
from concner.corpus.export import (
    export_zip,
    push_to_hub,
    read_export,
    run_ner_layout,
    to_dataset_dict,
    write_export,
)
from concner.errors import ConcnerError, LabelSchemaError
from concner.labels import LabelSchema
from concner.sentence import Sentence

SCHEMA = LabelSchema(["PER", "ORG", "LOC", "MISC"])


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()


def _splits() -> dict[str, list[Sentence]]:
    en = [
        Sentence.from_tokens("s1", "en", ["John", "Smith", "visited", "Paris", "."],
                             ["B-PER", "I-PER", "O", "B-LOC", "O"], meta={"origin": "import"}),
        Sentence.from_tokens("s2", "en", ["Google", "is", "in", "New", "York"],
                             ["B-ORG", "O", "O", "B-LOC", "I-LOC"]),
    ]
    translations = [
        Sentence.from_tokens("t1", "es", ["John", "Smith", "visitó", "París", "."],
                             ["B-PER", "I-PER", "O", "B-LOC", "O"],
                             meta={"source_id": "s1", "projection": "ok"}),
    ]
    target = [
        Sentence.from_text("g1", "ar", "زار محمد القاهرة 😀"),
        Sentence.from_tokens("g2", "zh", ["北", "京", "大", "学"], ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]),
        Sentence.from_tokens("g3", "he", ["דוד", "גר", "בחיפה"], ["B-PER", "O", "B-LOC"]),
        Sentence.from_tokens("g4", "hi", ["दिल्ली", "में"], ["B-LOC", "O"]),  # combining marks
    ]
    target[0] = target[0].with_tags(["O", "B-PER", "B-LOC", "O"])
    silver = [
        Sentence.from_tokens("p1", "es", ["Ana", "trabaja", "en", "Madrid"],
                             ["B-PER", "O", "O", "B-MISC"],
                             meta={"model_version": 3, "scores": [0.9, 0.4]}),
    ]
    return {"source": en, "translations": translations, "target_dev": target, "silver": silver}


def _by_lang(sentences):
    grouped: dict[str, list[tuple[list[str], list[str]]]] = {}
    for s in sentences:
        grouped.setdefault(s.lang, []).append((list(s.tokens), list(s.tags)))
    return grouped


@pytest.mark.parametrize("fmt", ["hf", "parquet", "conll", "jsonl"])
def test_round_trip_every_format(tmp_path, fmt):
    splits = _splits()
    result = write_export(splits, SCHEMA, fmt, tmp_path / "out")
    assert result.counts == {k: len(v) for k, v in splits.items()}
    back, schema = read_export(tmp_path / "out")
    assert schema == SCHEMA
    assert set(back) == set(splits)
    for name, sentences in splits.items():
        if fmt == "conll":  # ids are not kept; order is per language
            assert _by_lang(back[name]) == _by_lang(sentences)
        else:
            assert [(s.id, s.lang, s.tokens, s.tags) for s in back[name]] == \
                   [(s.id, s.lang, s.tokens, s.tags) for s in sentences]


def test_corpus_readers_reimport(tmp_path):
    """The exports re-import through the project's own readers (what a user would run)."""
    splits = _splits()
    expected = [(s.id, s.lang, s.tokens, s.tags) for s in splits["target_dev"]]

    write_export(splits, SCHEMA, "hf", tmp_path / "hf")
    got = corpus.read_hf(str(tmp_path / "hf"), "xx", split="target_dev", schema=SCHEMA)
    assert [(s.id, s.lang, s.tokens, s.tags) for s in got] == expected

    write_export(splits, SCHEMA, "parquet", tmp_path / "pq")
    got = corpus.read_hf(str(tmp_path / "pq" / "data" / "target_dev.parquet"), "xx",
                         schema=SCHEMA)
    assert [(s.id, s.lang, s.tokens, s.tags) for s in got] == expected

    write_export(splits, SCHEMA, "jsonl", tmp_path / "jl")
    got = corpus.read_jsonl(tmp_path / "jl" / "target_dev.jsonl", schema=SCHEMA)
    assert [(s.id, s.lang, s.tokens, s.tags) for s in got] == expected

    write_export(splits, SCHEMA, "conll", tmp_path / "cn")
    got = corpus.read_conll(tmp_path / "cn" / "target_dev-zh.conll")
    zh = splits["target_dev"][1]
    assert [(s.lang, s.tokens, s.tags) for s in got] == [("zh", zh.tokens, zh.tags)]


def test_dataset_dict_features_load_from_disk(tmp_path):
    import datasets
    from datasets import ClassLabel, Value

    write_export(_splits(), SCHEMA, "hf", tmp_path / "dd")
    dd = datasets.load_from_disk(str(tmp_path / "dd"))
    assert isinstance(dd, datasets.DatasetDict)
    features = dd["source"].features
    # what run_ner.py reads: a ClassLabel sequence whose names are the IOB2 tags
    assert isinstance(features["ner_tags"].feature, ClassLabel)
    assert features["ner_tags"].feature.names == SCHEMA.tags
    assert features["tokens"].feature == Value("string")
    row = dd["source"][0]
    assert row["tokens"] == ["John", "Smith", "visited", "Paris", "."]
    assert [SCHEMA.tags[i] for i in row["ner_tags"]] == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert json.loads(row["meta"]) == {"origin": "import"}
    assert dd["target_dev"][0]["text"] == "زار محمد القاهرة 😀"


def test_parquet_folder_loads_with_load_dataset(tmp_path):
    """``load_dataset(folder)`` finds every split (README configs) with ClassLabel features,
    so ``run_ner.py --dataset_name folder`` works; run_ner layout gives train/validation."""
    import datasets

    write_export(_splits(), SCHEMA, "parquet", tmp_path / "pq", layout="run_ner")
    dd = datasets.load_dataset(str(tmp_path / "pq"))
    assert set(dd) == {"train", "validation"}
    assert dd["train"].num_rows == 4 and dd["validation"].num_rows == 4
    assert dd["validation"].features["ner_tags"].feature.names == SCHEMA.tags


def test_run_ner_layout_keeps_origin():
    merged = run_ner_layout(_splits())
    assert [s.meta["part"] for s in merged["train"]] == ["source", "source", "translations",
                                                         "silver"]
    assert [s.id for s in merged["validation"]] == ["g1", "g2", "g3", "g4"]


def test_unlabelled_or_invalid_refused_and_nothing_written(tmp_path):
    splits = _splits()
    splits["target_dev"].append(Sentence.from_tokens("u1", "es", ["sin", "etiquetas"]))
    with pytest.raises(LabelSchemaError, match="u1"):
        write_export(splits, SCHEMA, "jsonl", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p.name for p in tmp_path.iterdir() if "out" in p.name]  # no staging left

    # a failure while writing (CoNLL cannot hold a tab in a token) leaves nothing behind
    tabbed = {"source": [Sentence.from_tokens("t", "en", ["a\tb", "c"], ["O", "O"])]}
    with pytest.raises(ConcnerError, match="tab"):
        write_export(tabbed, SCHEMA, "conll", tmp_path / "out")
    assert not [p.name for p in tmp_path.iterdir() if "out" in p.name]

    bad = {"source": [Sentence.from_tokens("x", "en", ["a", "b"], ["I-PER", "O"])]}
    with pytest.raises(LabelSchemaError, match="invalid IOB2"):
        to_dataset_dict(bad, SCHEMA)
    with pytest.raises(ConcnerError, match="split name"):
        write_export({"bad-name": _splits()["source"]}, SCHEMA, "hf", tmp_path / "o2")
    with pytest.raises(ConcnerError, match="unknown export format"):
        write_export(_splits(), SCHEMA, "xlsx", tmp_path / "o3")


def test_existing_output_needs_overwrite(tmp_path):
    write_export(_splits(), SCHEMA, "jsonl", tmp_path / "out")
    with pytest.raises(ConcnerError, match="already exists"):
        write_export(_splits(), SCHEMA, "jsonl", tmp_path / "out")
    result = write_export({"source": _splits()["source"]}, SCHEMA, "jsonl", tmp_path / "out",
                          overwrite=True)
    assert sorted(p.name for p in result.files) == ["labels.json", "source.jsonl"]


def test_zip_for_download_holds_the_export(tmp_path):
    data = export_zip(_splits(), SCHEMA, "conll", name="proj")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path)
    back, schema = read_export(tmp_path / "proj")
    assert schema == SCHEMA
    assert _by_lang(back["source"]) == _by_lang(_splits()["source"])


def test_push_to_hub_needs_token_and_valid_repo():
    # the upload itself needs the Hub (not reachable here); the checks before it are local
    with pytest.raises(ConcnerError, match="token"):
        push_to_hub(_splits(), SCHEMA, "user/name", "")
    with pytest.raises(ConcnerError, match="user/name"):
        push_to_hub(_splits(), SCHEMA, "not a repo", "hf_secret")


def test_export_command_from_the_store(tmp_path, monkeypatch, capsys):
    from concner.cli import main
    from concner.store import Store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    store = Store(url)
    store.create_project("p", source_lang="en", target_langs=["es"],
                         entity_types=["PER", "ORG", "LOC", "MISC"], encoder="x")
    splits = _splits()
    store.import_sentences("p", splits["source"], role="source", split="train")
    store.import_sentences("p", splits["translations"], role="translation", split="train")
    store.import_sentences("p", splits["silver"], role="target", split="dev")
    out = tmp_path / "out"
    assert main(["export", "--project", "p", "--what", "source,translations,target",
                 "--format", "parquet", "--layout", "run_ner", "--out", str(out)]) == 0
    assert f"to {out}" in capsys.readouterr().out
    back, schema = read_export(out)
    assert schema == SCHEMA
    assert [(s.id, s.tags) for s in back["train"]] == \
        [(s.id, s.tags) for s in splits["source"] + splits["translations"]]
    assert [(s.id, s.tags) for s in back["validation"]] == [("p1", splits["silver"][0].tags)]
    # silver needs an active model; pushing needs a token: both refused with a clear message
    assert main(["export", "--project", "p", "--what", "silver", "--out",
                 str(tmp_path / "o2")]) == 2
    assert "no active model" in capsys.readouterr().err
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["export", "--project", "p", "--out", str(tmp_path / "o3"),
                 "--push-to-hub", "me/data"]) == 2
    assert "needs a token in $HF_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "o3").exists()
