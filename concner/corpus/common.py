"""What every corpus reader shares: the read report, line sources with BOM/CRLF/UTF-8
handling and size limits, language detection from file names, tag validation."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from concner.errors import DataFormatError, LabelSchemaError
from concner.labels import LabelSchema, iob2_errors, repair_iob2, split_tag


@dataclass
class ReadReport:
    """What a reader saw: sentences and tokens read, things skipped or repaired (counted)."""

    path: str
    sentences: int = 0
    tokens: int = 0
    skipped: Counter = field(default_factory=Counter)
    repaired_tags: int = 0

    def summary(self) -> str:
        parts = [f"{self.path}: {self.sentences} sentences, {self.tokens} tokens"]
        if self.repaired_tags:
            parts.append(f"{self.repaired_tags} stray I- tags repaired to B-")
        for what, n in sorted(self.skipped.items()):
            parts.append(f"{n} {what} skipped")
        return "; ".join(parts)


# --------------------------------------------------------------------------------------
# line sources
# --------------------------------------------------------------------------------------
def decoded_lines(raw: Iterable[bytes | str], name: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with the BOM and CR/LF stripped; bad UTF-8 raises."""
    for number, line in enumerate(raw, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"byte {exc.start + 1} of this line is not valid UTF-8; "
                    "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
                    path=name, line=number,
                ) from None
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        yield number, line.rstrip("\n").rstrip("\r")


def open_lines(source: str | os.PathLike | IO, max_bytes: int | None) -> tuple[Iterable, str]:
    if hasattr(source, "read"):
        name = getattr(source, "name", "<upload>")
        return source, str(name)
    path = Path(source)
    if not path.is_file():
        raise DataFormatError("file does not exist", path=str(path))
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DataFormatError(
            f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
            "split it or raise data.max_upload_mb",
            path=str(path),
        )
    return path.open("rb"), str(path)


@contextmanager
def reading(source: str | os.PathLike | IO, max_bytes: int | None, report: ReadReport | None,
            *, expect: str) -> Iterator[tuple[Iterable, str, ReadReport]]:
    """Open a reader's line source and see the read through.

    Yields ``(lines, name, report)`` (a fresh :class:`ReadReport` unless one is given).
    The file opened here is closed on every way out: the end, an error, the consumer
    stopping early; a stream the caller passed in is left open. A read that ends without
    an error but found no sentence raises :class:`DataFormatError` naming the file, what was
    skipped, and ``expect``: what the file should hold.
    """
    lines, name = open_lines(source, max_bytes)
    report = report if report is not None else ReadReport(name)
    sentences_before, skipped_before = report.sentences, Counter(report.skipped)
    try:
        yield lines, name, report
    finally:
        if lines is not source:
            lines.close()
    if report.sentences == sentences_before:
        skipped = report.skipped - skipped_before
        found = ("the file is empty or has only blank lines" if not skipped else
                 "nothing but skipped lines: "
                 + ", ".join(f"{what}: {n}" for what, n in sorted(skipped.items())))
        raise DataFormatError(f"no sentences found ({found}); {expect}", path=name)


def language_of(lang: str | None, name: str) -> str:
    if lang:
        return lang
    stem = Path(name).stem
    guess = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    if 2 <= len(guess) <= 3 and guess.isalpha() and guess.islower():
        return guess
    raise DataFormatError(
        "cannot tell the language of this file; pass it explicitly (e.g. --lang en)", path=name
    )


def check_tags(tags: list[str], *, name: str, first_line: int, lines: list[int],
                schema: LabelSchema | None, repair_iob: bool, report: ReadReport) -> list[str]:
    for tag, line in zip(tags, lines):
        try:
            split_tag(tag)
        except LabelSchemaError:
            raise DataFormatError(
                f"tag {tag!r} is not IOB2 (expected O, B-TYPE or I-TYPE)", path=name, line=line
            ) from None
        if schema is not None and tag not in schema.tag_to_id:
            raise DataFormatError(
                f"unknown label {tag!r}; the project's labels are {schema.entity_types} "
                "(add the type to the project, or map it before import)",
                path=name, line=line,
            )
    problems = iob2_errors(tags)
    if problems:
        if not repair_iob:
            i, what = problems[0]
            raise DataFormatError(f"invalid IOB2: {what}", path=name, line=lines[i],
                                  hint="repair_iob")
        tags, n = repair_iob2(tags)
        report.repaired_tags += n
    return tags



class writer:
    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        if hasattr(self.path, "write"):
            return self.path
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "w", encoding="utf-8", newline="\n")
        return self.handle

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()
