"""Corpus readers and writers: formats, validation with file and line, nothing lost."""

import io
import json
from pathlib import Path

import pytest

from concner.corpus import (
    ReadReport,
    detect_format,
    iter_conll,
    iter_jsonl,
    iter_text_lines,
    read_any,
    read_conll,
    read_hf,
    read_jsonl,
    read_text_lines,
    write_conll,
    write_jsonl,
)
from concner.errors import DataFormatError
from concner.labels import LabelSchema
from concner.sentence import Sentence

SCHEMA = LabelSchema(["PER", "ORG", "LOC"])


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8", newline="")
    return p


def test_conll_tab_space_docstart_bom_crlf(tmp_path):
    text = "\ufeff-DOCSTART-\tO\r\n\r\nJohn\tB-PER\r\nlives\tO\r\nin\tO\r\nParis\tB-LOC\r\n\r\nACME Inc ORG\r\n"
    # the last sentence is space-separated with 3 columns: must fail (file has 2 columns)
    p = write(tmp_path, "a-en.tsv", text)
    with pytest.raises(DataFormatError) as err:
        read_conll(p)
    assert err.value.line == 8 and "columns" in str(err.value) and "a-en.tsv" in str(err.value)

    p = write(tmp_path, "b-en.tsv", text.replace("ACME Inc ORG", "ACME B-ORG"))
    report = ReadReport(str(p))
    sents = read_conll(p, report=report)
    assert [s.tokens for s in sents] == [["John", "lives", "in", "Paris"], ["ACME"]]
    assert sents[0].tags == ["B-PER", "O", "O", "B-LOC"] and sents[1].tags == ["B-ORG"]
    assert all(s.lang == "en" for s in sents)
    assert report.skipped["-DOCSTART- lines"] == 1 and report.sentences == 2


def test_conll_multi_column_takes_first_and_last(tmp_path):
    p = write(tmp_path, "x.conll", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n")
    (s,) = read_conll(p, "en")
    assert s.tokens == ["EU", "rejects"] and s.tags == ["B-ORG", "O"]


def test_invalid_iob_names_line_and_repair_flag(tmp_path):
    p = write(tmp_path, "bad.tsv", "The\tO\nUN\tI-ORG\n\n")
    with pytest.raises(DataFormatError) as err:
        read_conll(p, "en")
    assert err.value.line == 2 and "--repair-iob" in str(err.value)
    report = ReadReport(str(p))
    (s,) = read_conll(p, "en", repair_iob=True, report=report)
    assert s.tags == ["O", "B-ORG"] and report.repaired_tags == 1


def test_unknown_label_and_not_iob(tmp_path):
    p = write(tmp_path, "u.tsv", "Monday\tB-DATE\n\n")
    with pytest.raises(DataFormatError, match="unknown label 'B-DATE'") as err:
        read_conll(p, "en", schema=SCHEMA)
    assert err.value.line == 1
    p = write(tmp_path, "v.tsv", "Bob\tB-PER\nx\tPERSON\n\n")
    with pytest.raises(DataFormatError, match="not IOB2") as err:
        read_conll(p, "en")
    assert err.value.line == 2


def test_empty_and_missing_and_non_utf8(tmp_path):
    with pytest.raises(DataFormatError, match="no sentences"):
        read_conll(write(tmp_path, "e.tsv", "\n\n"), "en")
    with pytest.raises(DataFormatError, match="does not exist"):
        read_conll(tmp_path / "nope.tsv", "en")
    p = write(tmp_path, "l.tsv", "Bob\tB-PER\n\nM\xfcller\tB-PER\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match="not valid UTF-8") as err:
        read_conll(p, "de")
    assert err.value.line == 3


READERS = {  # reader, a good two-sentence file, a file with an error on line 2, what to add
    "conll": (iter_conll, "Bob\tB-PER\n\nParis\tB-LOC\n", "Bob\tB-PER\nx\tPERSON\n",
              "token<TAB>tag"),
    "jsonl": (iter_jsonl, '{"tokens": ["Bob"]}\n{"tokens": ["Paris"]}\n',
              '{"tokens": ["Bob"]}\n{oops\n', "one JSON object per line"),
    "text": (iter_text_lines, "Bob runs.\nParis\n", None, "one sentence per line"),
}


@pytest.fixture
def opened(monkeypatch):
    """The files opened for reading (to check the readers close them)."""
    handles = []
    real = Path.open

    def spy(self, *args, **kwargs):
        handle = real(self, *args, **kwargs)
        if "r" in handle.mode:
            handles.append(handle)
        return handle

    monkeypatch.setattr(Path, "open", spy)
    return handles


@pytest.mark.parametrize("fmt", READERS)
def test_every_reader_closes_its_file_on_every_way_out(tmp_path, opened, fmt):
    reader, good, bad, _ = READERS[fmt]
    p = write(tmp_path, f"good-en.{fmt}", good)
    assert len(list(reader(p, "en"))) == 2                     # read to the end
    it = reader(p, "en")
    next(it)
    it.close()                                                 # the consumer stops early
    if bad is not None:                                        # an error half-way
        with pytest.raises(DataFormatError) as err:
            list(reader(write(tmp_path, f"bad-en.{fmt}", bad), "en"))
        assert err.value.line == 2
    assert len(opened) == (3 if bad is not None else 2)
    assert all(h.closed for h in opened)


def test_conll_closes_the_file_when_the_language_is_unknown(tmp_path, opened):
    with pytest.raises(DataFormatError, match="--lang"):
        read_conll(write(tmp_path, "data.tsv", "Bob\tB-PER\n"))
    assert len(opened) == 1 and opened[0].closed


@pytest.mark.parametrize("fmt", READERS)
def test_every_reader_leaves_a_callers_stream_open(fmt):
    reader, good, _, _ = READERS[fmt]
    upload = io.BytesIO(good.encode())
    upload.name = f"upload-en.{fmt}"
    assert len(list(reader(upload, "en"))) == 2
    assert not upload.closed


@pytest.mark.parametrize("fmt", READERS)
@pytest.mark.parametrize("content, found", [
    ("", "the file is empty or has only blank lines"),
    ("\n \n", "blank lines"),
])
def test_every_reader_says_which_file_is_empty_and_what_to_add(tmp_path, fmt, content, found):
    reader, _, _, what_to_add = READERS[fmt]
    p = write(tmp_path, f"e-en.{fmt}", content)
    with pytest.raises(DataFormatError, match="no sentences found") as err:
        list(reader(p, "en"))
    assert err.value.path == str(p)
    assert found in str(err.value) and what_to_add in str(err.value)


def test_no_sentences_reports_what_was_skipped(tmp_path):
    p = write(tmp_path, "d-en.tsv", "-DOCSTART- O\n\n")
    with pytest.raises(DataFormatError, match="nothing but skipped lines: -DOCSTART- lines: 1"):
        read_conll(p)


def test_a_shared_report_still_catches_an_empty_second_file(tmp_path):
    report = ReadReport("two files")
    read_text_lines(write(tmp_path, "a.txt", "Bob runs.\n"), "en", report=report)
    with pytest.raises(DataFormatError, match="no sentences found"):
        read_text_lines(write(tmp_path, "b.txt", "\n"), "en", report=report)
    assert report.sentences == 1


def test_one_column_labelled_file_rejected_but_readable_unlabelled(tmp_path):
    p = write(tmp_path, "t.tsv", "Bob\nruns\n\n")
    with pytest.raises(DataFormatError, match="one column"):
        read_conll(p, "en")
    (s,) = read_conll(p, "en", labelled=False)
    assert s.tags is None and s.tokens == ["Bob", "runs"]


def test_language_must_be_known(tmp_path):
    p = write(tmp_path, "data.tsv", "Bob\tB-PER\n")
    with pytest.raises(DataFormatError, match="--lang"):
        read_conll(p)


def test_size_limit(tmp_path):
    p = write(tmp_path, "big-en.tsv", "Bob\tB-PER\n" * 1000)
    with pytest.raises(DataFormatError, match="limit"):
        read_conll(p, max_bytes=100)


def test_stream_upload_bytes():
    upload = io.BytesIO(b"Ana\tB-PER\n\nLima\tB-LOC\n")
    upload.name = "upload-es.tsv"
    sents = list(iter_conll(upload))
    assert [s.lang for s in sents] == ["es", "es"] and sents[1].tags == ["B-LOC"]


def test_jsonl_tokens_ids_text_spans(tmp_path):
    lines = [
        {"tokens": ["Ana", "vive", "en", "Lima"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]},
        {"tokens": ["ONU"], "ner_tags": [3], "id": "x7", "lang": "es"},
        {"text": "Visité Ciudad de México 🙂", "spans": [{"start": 7, "end": 23, "label": "LOC"}]},
        {"tokens": ["sin", "etiquetas"]},
    ]
    p = write(tmp_path, "d.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    with pytest.raises(DataFormatError, match="integer ids") as err:
        read_jsonl(p, "es")
    assert err.value.line == 2
    sents = read_jsonl(p, "es", schema=SCHEMA)
    assert sents[1].id == "x7" and sents[1].tags == ["B-ORG"]
    assert sents[2].tokens == ["Visité", "Ciudad", "de", "México", "🙂"]
    assert sents[2].tags == ["O", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert sents[3].tags is None


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", "not valid JSON"),
        ('{"tokens": ["a", "b"], "ner_tags": ["O"]}', "1 ner_tags for 2 tokens"),
        ('{"tokens": []}', "non-empty list"),
        ('{"text": "abc", "spans": [{"start": 0, "end": 9, "label": "PER"}]}', "outside the text"),
        ('{"text": "Bob Smith", "spans": [{"start": 1, "end": 5, "label": "PER"}]}', "token boundaries"),
        ('{"foo": 1}', "needs \\\"tokens\\\""),
        ('[1, 2]', "JSON object"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    p = write(tmp_path, "bad.jsonl", '{"tokens": ["ok"]}\n' + line + "\n")
    with pytest.raises(DataFormatError) as err:
        read_jsonl(p, "en")
    assert err.value.line == 2 and "bad.jsonl" in str(err.value)
    assert message.replace("\\", "") in str(err.value)


def test_round_trips_conll_and_jsonl(tmp_path):
    sents = [
        Sentence.from_tokens("a", "ar", ["زار", "أحمد", "القاهرة", "🙂"], ["O", "B-PER", "B-LOC", "O"]),
        Sentence.from_tokens("b", "zh", list("我在北京"), ["O", "O", "B-LOC", "I-LOC"]),
        Sentence.from_tokens("c", "he", ["שלום", "e\u0301"], ["B-PER", "I-PER"]),
    ]
    for sent in sents:
        write_conll([sent], tmp_path / f"{sent.id}-{sent.lang}.tsv")
        back = read_conll(tmp_path / f"{sent.id}-{sent.lang}.tsv")
        assert back[0].tokens == sent.tokens and back[0].tags == sent.tags
    for style in ("tokens", "spans"):
        write_jsonl(sents, tmp_path / f"{style}.jsonl", style=style)
        back = read_jsonl(tmp_path / f"{style}.jsonl")
        assert [(s.id, s.lang, s.tokens, s.tags) for s in back] == [
            (s.id, s.lang, s.tokens, s.tags) for s in sents]


def test_text_lines(tmp_path):
    p = write(tmp_path, "raw.txt", "Mwalimu Nyerere alizaliwa Butiama.\n\n  \nDar es Salaam\n")
    sents = read_text_lines(p, "sw")
    assert [s.tokens for s in sents] == [["Mwalimu", "Nyerere", "alizaliwa", "Butiama", "."],
                                         ["Dar", "es", "Salaam"]]
    assert all(s.tags is None for s in sents)


def test_hf_save_to_disk_and_parquet(tmp_path):
    import datasets

    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=SCHEMA.tags)),
    })
    ds = datasets.Dataset.from_dict(
        {"tokens": [["Ana", "vive"], ["Lima"]], "ner_tags": [[1, 0], [5]]}, features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    sents = read_any(tmp_path / "dd", "es")
    assert sents[0].tags == ["B-PER", "O"] and sents[1].tags == ["B-LOC"]
    ds.to_parquet(str(tmp_path / "x.parquet"))
    assert [s.tags for s in read_any(tmp_path / "x.parquet", "es")] == [["B-PER", "O"], ["B-LOC"]]
    with pytest.raises(DataFormatError, match="no split"):
        read_hf(str(tmp_path / "dd"), "es", split="validation")


def test_hub_id_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataFormatError, match="internet"):
        read_hf("unimelb-nlp/wikiann", "sw")


def test_detect_format(tmp_path):
    assert detect_format("a.tsv") == "conll" and detect_format("a.jsonl") == "jsonl"
    assert detect_format(tmp_path) == "hf"
    odd = write(tmp_path, "a.xyz", "x")
    with pytest.raises(DataFormatError):
        detect_format(odd)


def test_reads_real_panx_sample():
    from pathlib import Path

    path = Path(__file__).resolve().parents[4] / "shared" / "data" / "panx" / "dev-zh.tsv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    first = next(iter_conll(path))
    assert first.lang == "zh" and " " not in first.text and first.tags is not None
