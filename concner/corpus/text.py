"""Plain text: one unlabelled sentence per line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from concner.corpus.common import ReadReport, decoded_lines, reading
from concner.sentence import Sentence


# --------------------------------------------------------------------------------------
def iter_text_lines(source, lang: str, *, pretokenized: bool = False, id_prefix: str | None = None,
                    max_bytes: int | None = None, report: ReadReport | None = None
                    ) -> Iterator[Sentence]:
    """One sentence per line; tokenised with :func:`tokenize_text`, or split on whitespace
    when ``pretokenized``. Blank lines are skipped and counted."""
    expect = "add one sentence per line"
    with reading(source, max_bytes, report, expect=expect) as (lines, name, counts):
        prefix = id_prefix if id_prefix is not None else Path(name).stem
        for number, line in decoded_lines(lines, name):
            if not line.strip():
                counts.skipped["blank lines"] += 1
                continue
            meta = {"source_file": Path(name).name, "line": number}
            sid = f"{prefix}-{counts.sentences}"
            if pretokenized:
                sent = Sentence.from_tokens(sid, lang, line.split(), meta=meta)
            else:
                sent = Sentence.from_text(sid, lang, line.strip(), meta=meta)
                if not sent.tokens:
                    counts.skipped["lines without tokens"] += 1
                    continue
            counts.sentences += 1
            counts.tokens += len(sent.tokens)
            yield sent


def read_text_lines(source, lang: str, **kwargs) -> list[Sentence]:
    return list(iter_text_lines(source, lang, **kwargs))
