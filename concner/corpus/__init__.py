"""Reading and writing corpora: CoNLL/TSV, JSONL, Hugging Face ``datasets``, plain text.

Every reader validates as it goes and raises :class:`DataFormatError` naming the file
and line and what to do. Nothing is dropped silently: what is skipped on purpose
(``-DOCSTART-`` lines, repaired tags) is counted in a :class:`ReadReport`.
Readers work on streams of lines, so uploads are parsed without loading them whole.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from concner.corpus.common import ReadReport
from concner.corpus.conll import iter_conll, read_conll, write_conll
from concner.corpus.hf import read_hf
from concner.corpus.jsonl import iter_jsonl, read_jsonl, sentence_to_json, write_jsonl
from concner.corpus.text import iter_text_lines, read_text_lines
from concner.errors import DataFormatError
from concner.sentence import Sentence

CONLL_SUFFIXES = {".tsv", ".conll", ".conllu", ".iob", ".iob2", ".bio", ".txt"}
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}

__all__ = ["CONLL_SUFFIXES", "JSONL_SUFFIXES", "ReadReport", "detect_format", "iter_conll",
           "iter_jsonl", "iter_text_lines", "read_any", "read_conll", "read_hf", "read_jsonl",
           "read_text_lines", "sample", "sentence_to_json", "text_stream", "write_conll",
           "write_jsonl"]


# --------------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike) -> str:
    p = Path(path)
    if p.is_dir() or p.suffix == ".parquet":
        return "hf"
    if p.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    if p.suffix.lower() in CONLL_SUFFIXES:
        return "conll"
    if not p.exists():
        return "hf"  # maybe a hub id
    raise DataFormatError(
        "cannot tell the format from the name; use .tsv/.conll, .jsonl or .parquet, "
        "or pass the format explicitly", path=str(p))


def read_any(path: str | os.PathLike, lang: str | None = None, *, fmt: str = "auto",
             **kwargs) -> list[Sentence]:
    """Read a labelled corpus in any supported format (``conll``, ``jsonl``, ``hf``)."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "conll":
        return read_conll(path, lang, **kwargs)
    if fmt == "jsonl":
        return read_jsonl(path, lang, **kwargs)
    if fmt == "hf":
        if not lang:
            raise DataFormatError("pass the language for a datasets source", path=str(path))
        allowed = {k: v for k, v in kwargs.items() if k in ("split", "schema", "repair_iob",
                                                             "config_name", "limit")}
        return read_hf(str(path), lang, **allowed)
    raise DataFormatError(f"unknown format {fmt!r}: use conll, jsonl or hf", path=str(path))


def sample(sentences: Sequence[Sentence], n: int, seed: int) -> list[Sentence]:
    """A seeded sample of ``n`` sentences (order of the original kept)."""
    import random

    if n >= len(sentences):
        return list(sentences)
    idx = sorted(random.Random(seed).sample(range(len(sentences)), n))
    return [sentences[i] for i in idx]


def text_stream(data: bytes) -> IO:
    """Wrap uploaded bytes as a line stream for the readers (keeps the upload's name)."""
    return io.BytesIO(data)
