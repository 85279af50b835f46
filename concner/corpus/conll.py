"""CoNLL/TSV: ``token<TAB>tag`` (or space-separated) lines, a blank line between sentences."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from concner.corpus.common import (
    ReadReport,
    check_tags,
    decoded_lines,
    language_of,
    reading,
    writer,
)
from concner.errors import DataFormatError
from concner.labels import LabelSchema
from concner.sentence import Sentence


# --------------------------------------------------------------------------------------
def iter_conll(
    source: str | os.PathLike | IO,
    lang: str | None = None,
    *,
    labelled: bool = True,
    schema: LabelSchema | None = None,
    repair_iob: bool = False,
    id_prefix: str | None = None,
    max_bytes: int | None = None,
    report: ReadReport | None = None,
) -> Iterator[Sentence]:
    """Stream sentences from a CoNLL/TSV file: ``token<TAB>tag`` (or space-separated), a
    blank line between sentences, ``-DOCSTART-`` lines skipped (counted).

    With several columns (e.g. CoNLL-2003's ``token POS chunk tag``) the token is the first
    and the tag the last column; every line must have as many columns as the first.
    ``labelled=False`` reads a token per line (first column), tags ``None``.
    """
    expect = ("add 'token<TAB>tag' lines, a blank line between sentences" if labelled
              else "add one token per line, a blank line between sentences")
    with reading(source, max_bytes, report, expect=expect) as (lines, name, counts):
        yield from _conll_sentences(lines, name, language_of(lang, name), labelled=labelled,
                                    schema=schema, repair_iob=repair_iob, report=counts,
                                    prefix=id_prefix if id_prefix is not None
                                    else Path(name).stem)


def _conll_sentences(lines: Iterable, name: str, lang: str, *, labelled: bool,
                     schema: LabelSchema | None, repair_iob: bool, report: ReadReport,
                     prefix: str) -> Iterator[Sentence]:
    tokens: list[str] = []
    tags: list[str] = []
    token_lines: list[int] = []
    n_columns: int | None = None
    index = 0

    def flush() -> Sentence | None:
        nonlocal tokens, tags, token_lines, index
        if not tokens:
            return None
        checked = None
        if labelled:
            checked = check_tags(tags, name=name, first_line=token_lines[0], lines=token_lines,
                                  schema=schema, repair_iob=repair_iob, report=report)
        sent = Sentence.from_tokens(f"{prefix}-{index}", lang, tokens, checked,
                                    meta={"source_file": Path(name).name, "line": token_lines[0]})
        index += 1
        report.sentences += 1
        report.tokens += len(tokens)
        tokens, tags, token_lines = [], [], []
        return sent

    for number, line in decoded_lines(lines, name):
        if not line.strip():
            sent = flush()
            if sent is not None:
                yield sent
            continue
        if line.startswith("-DOCSTART-"):
            report.skipped["-DOCSTART- lines"] += 1
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        columns = [c.strip() for c in columns]
        if n_columns is None:
            n_columns = len(columns)
            if labelled and n_columns < 2:
                raise DataFormatError(
                    f"expected 'token<TAB>tag' but found one column ({line!r}); "
                    "add the tags, or import the file as unlabelled text",
                    path=name, line=number,
                )
        elif len(columns) != n_columns:
            raise DataFormatError(
                f"{len(columns)} columns where the file's first line has {n_columns}; "
                "every line needs 'token<TAB>tag' (check for a stray tab or space in a token)",
                path=name, line=number,
            )
        if not columns[0]:
            raise DataFormatError("empty token; remove the line or fill in the token",
                                  path=name, line=number)
        tokens.append(columns[0])
        token_lines.append(number)
        if labelled:
            tags.append(columns[-1])
    sent = flush()
    if sent is not None:
        yield sent


def read_conll(source, lang: str | None = None, **kwargs) -> list[Sentence]:
    """All sentences of a CoNLL/TSV file (see :func:`iter_conll` for the options)."""
    return list(iter_conll(source, lang, **kwargs))


def write_conll(sentences: Iterable[Sentence], path: str | os.PathLike | IO) -> int:
    """Write ``token<TAB>tag`` lines, a blank line between sentences. Returns the count."""
    n = 0
    with writer(path) as out:
        for sent in sentences:
            if sent.tags is None:
                raise DataFormatError(f"sentence {sent.id} has no tags; CoNLL export needs tags")
            for token, tag in zip(sent.tokens, sent.tags):
                if any(c in token for c in "\t\n\r"):
                    raise DataFormatError(
                        f"sentence {sent.id}: token {token!r} contains a tab or line break, "
                        "which CoNLL cannot hold; use JSONL"
                    )
                out.write(f"{token}\t{tag}\n")
            out.write("\n")
            n += 1
    return n
