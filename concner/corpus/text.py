"""Plain text: one unlabelled sentence per line."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from concner.corpus.common import ReadReport, decoded_lines, open_lines
from concner.errors import DataFormatError
from concner.sentence import Sentence


# --------------------------------------------------------------------------------------
def iter_text_lines(source, lang: str, *, pretokenized: bool = False, id_prefix: str | None = None,
                    max_bytes: int | None = None, report: ReadReport | None = None
                    ) -> Iterator[Sentence]:
    """One sentence per line; tokenised with :func:`tokenize_text`, or split on whitespace
    when ``pretokenized``. Blank lines are skipped and counted."""
    lines, name = open_lines(source, max_bytes)
    report = report if report is not None else ReadReport(name)
    prefix = id_prefix if id_prefix is not None else Path(name).stem
    try:
        for number, line in decoded_lines(lines, name):
            if not line.strip():
                report.skipped["blank lines"] += 1
                continue
            meta = {"source_file": Path(name).name, "line": number}
            sid = f"{prefix}-{report.sentences}"
            if pretokenized:
                sent = Sentence.from_tokens(sid, lang, line.split(), meta=meta)
            else:
                sent = Sentence.from_text(sid, lang, line.strip(), meta=meta)
                if not sent.tokens:
                    report.skipped["lines without tokens"] += 1
                    continue
            report.sentences += 1
            report.tokens += len(sent.tokens)
            yield sent
    finally:
        if not hasattr(source, "read"):
            lines.close()
    if report.sentences == 0:
        raise DataFormatError("no sentences found (the file is empty)", path=name)


def read_text_lines(source, lang: str, **kwargs) -> list[Sentence]:
    return list(iter_text_lines(source, lang, **kwargs))
