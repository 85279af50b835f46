"""Parsing uploads: bounded in size, read as a stream, every error with file and line.

An upload is parsed completely (and validated) before anything is written; the store
import that follows is one transaction, so a bad file never leaves half its sentences in
the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from concner import corpus
from concner.errors import ConcnerError, DataFormatError
from concner.labels import LabelSchema
from concner.sentence import Sentence

#: the Data page's checkbox that repairs stray I- tags (its upload and datasets forms)
REPAIR_LABEL = "Repair stray I- tags to B-"
#: how the Data page names the controls that fix a hinted error (see concner.errors)
APP_HINTS: dict[str, str] = {
    "repair_iob": f'fix the file, or tick "{REPAIR_LABEL}" and import again',
}

#: What an upload holds -> (store role, store split, labelled?)
KINDS: dict[str, tuple[str, str, bool]] = {
    "source": ("source", "train", True),
    "translation": ("translation", "train", True),
    "target_text": ("target", "pool", False),
    "target_gold": ("target", "dev", True),
}


@dataclass
class ParsedUpload:
    name: str
    sentences: list[Sentence] = field(default_factory=list)
    summary: str = ""


@dataclass
class UploadErrors:
    """Errors of a batch of uploads: ``(file, line or None, message)`` triples; a hinted
    error's fix names the form's controls (``controls``: hint key -> phrase, the Data
    page's by default; ``{}`` for a form without them)."""

    items: list[tuple[str, int | None, str]] = field(default_factory=list)
    controls: dict[str, str] = field(default_factory=lambda: dict(APP_HINTS))

    def add(self, name: str, exc: ConcnerError) -> None:
        if isinstance(exc, DataFormatError):
            self.items.append((exc.path or name, exc.line, exc.explain(self.controls)))
        else:
            self.items.append((name, None, str(exc)))

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        return [f"{f}:{ln}: {m}" if ln is not None else f"{f}: {m}" for f, ln, m in self.items]


def upload_format(name: str, choice: str = "auto") -> str:
    """``conll``, ``jsonl`` or ``text`` from the user's choice or the file name."""
    if choice != "auto":
        return choice
    suffix = Path(name).suffix.lower()
    if suffix in corpus.JSONL_SUFFIXES:
        return "jsonl"
    if suffix in (".tsv", ".conll", ".conllu", ".iob", ".iob2", ".bio"):
        return "conll"
    if suffix == ".txt":
        return "text"
    raise DataFormatError("cannot tell the format from the file name; use .tsv/.conll, "
                          ".jsonl or .txt, or choose the format", path=name)


def parse_upload(stream: IO[bytes], name: str, size: int, *, kind: str, lang: str,
                 schema: LabelSchema, max_mb: int, fmt: str = "auto",
                 pretokenized: bool = False, repair_iob: bool = False) -> ParsedUpload:
    """Parse one uploaded file (a binary stream, read line by line).

    Raises :class:`DataFormatError` naming the file and line of the first problem, or
    when the upload is over ``max_mb`` megabytes (``data.max_upload_mb``).
    """
    if kind not in KINDS:
        raise ConcnerError(f"unknown upload kind {kind!r}; one of {', '.join(KINDS)}")
    limit = max_mb * 1_000_000
    if size > limit:
        raise DataFormatError(f"upload is {size / 1e6:.1f} MB, over the {max_mb} MB limit; "
                              "split the file or raise data.max_upload_mb", path=name)
    labelled = KINDS[kind][2]
    fmt = upload_format(name, fmt)
    report = corpus.ReadReport(name)
    prefix = Path(name).stem
    stream = _Named(stream, name)
    if fmt == "conll":
        it: Iterable[Sentence] = corpus.iter_conll(
            stream, lang, labelled=labelled, schema=schema if labelled else None,
            repair_iob=repair_iob, id_prefix=prefix, report=report)
    elif fmt == "jsonl":
        it = corpus.iter_jsonl(stream, lang, schema=schema, repair_iob=repair_iob,
                               id_prefix=prefix, report=report)
    elif fmt == "text":
        if labelled:
            raise DataFormatError("plain text has no labels; upload CoNLL/TSV or JSONL for "
                                  "labelled data", path=name)
        it = corpus.iter_text_lines(stream, lang, pretokenized=pretokenized, id_prefix=prefix,
                                    report=report)
    else:
        raise ConcnerError(f"unknown upload format {fmt!r}: conll, jsonl or text")
    sentences = []
    for s in it:
        if labelled and s.tags is None:
            raise DataFormatError(f"sentence {s.id} has no labels but this upload is for "
                                  "labelled data", path=name, line=s.meta.get("line"))
        if not labelled and s.tags is not None:
            raise DataFormatError(f"sentence {s.id} has labels but this upload is for "
                                  "unlabelled text; upload it as target gold data instead",
                                  path=name, line=s.meta.get("line"))
        if s.lang != lang:
            raise DataFormatError(f"sentence {s.id} is in {s.lang!r}, but this upload is for "
                                  f"{lang!r}", path=name, line=s.meta.get("line"))
        sentences.append(s)
    return ParsedUpload(name, sentences, report.summary())


class _Named:
    """A line-iterable binary stream that carries the upload's name (for error messages)."""

    def __init__(self, stream: IO[bytes], name: str):
        self._stream = stream
        self.name = name

    def read(self, *args):
        return self._stream.read(*args)

    def __iter__(self):
        return iter(self._stream)


def import_uploads(store, project: str, files, *, kind: str, lang: str, max_mb: int,
                   fmt: str = "auto", pretokenized: bool = False, repair_iob: bool = False):
    """Parse every file (``name``, ``size``, readable binary stream: Streamlit's
    ``UploadedFile``), then import all of them in ONE store transaction.

    Returns ``(ImportReport | None, UploadErrors, summaries)``: when any file has an error,
    nothing is imported and every file's first error is listed (file and line).
    """
    from concner.labels import LabelSchema as _Schema

    record = store.get_project(project)
    schema = _Schema.from_dict(record.label_schema)
    role, split, labelled = KINDS[kind]
    # the unlabelled-text form has no repair checkbox (labels are refused there anyway)
    errors = UploadErrors() if labelled else UploadErrors(controls={})
    parsed: list[ParsedUpload] = []
    for f in files:
        try:
            parsed.append(parse_upload(f, f.name, f.size, kind=kind, lang=lang, schema=schema,
                                       max_mb=max_mb, fmt=fmt, pretokenized=pretokenized,
                                       repair_iob=repair_iob))
        except ConcnerError as exc:
            errors.add(f.name, exc)
    if errors or not parsed:
        return None, errors, []
    sentences = [s for p in parsed for s in p.sentences]
    try:
        report = store.import_sentences(project, sentences, role=role, split=split,
                                        source_name=", ".join(p.name for p in parsed))
    except ConcnerError as exc:
        errors.add(parsed[0].name if len(parsed) == 1 else "upload", exc)
        return None, errors, []
    return report, errors, [p.summary for p in parsed]


def import_dataset(store, project: str, source: str, *, kind: str, lang: str, split: str,
                   config_name: str | None = None, limit: int | None = None,
                   repair_iob: bool = False):
    """Import a ``datasets`` source (hub id, ``save_to_disk`` folder or parquet) in one
    transaction. Returns ``(ImportReport | None, UploadErrors)``."""
    from concner.labels import LabelSchema as _Schema

    record = store.get_project(project)
    schema = _Schema.from_dict(record.label_schema)
    role, store_split, labelled = KINDS[kind]
    errors = UploadErrors()
    if not labelled:
        errors.items.append((source, None, ("datasets sources are labelled; upload unlabelled "
                                            "text as a .txt file")))
        return None, errors
    try:
        sentences = corpus.read_hf(source, lang, split=split, config_name=config_name or None,
                                   schema=schema, repair_iob=repair_iob, limit=limit)
        report = store.import_sentences(project, sentences, role=role, split=store_split,
                                        source_name=f"{source} ({split})")
    except ConcnerError as exc:
        errors.add(source, exc)
        return None, errors
    return report, errors
