"""Reading and writing corpora: CoNLL/TSV, JSONL, Hugging Face ``datasets``, plain text.

Every reader validates as it goes and raises :class:`DataFormatError` naming the file
and line and what to do. Nothing is dropped silently: what is skipped on purpose
(``-DOCSTART-`` lines, repaired tags) is counted in a :class:`ReadReport`.
Readers work on streams of lines, so uploads are parsed without loading them whole.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from concner.errors import DataFormatError, LabelSchemaError
from concner.labels import LabelSchema, Span, iob2_errors, repair_iob2, split_tag
from concner.sentence import Sentence

CONLL_SUFFIXES = {".tsv", ".conll", ".conllu", ".iob", ".iob2", ".bio", ".txt"}
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}


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
def _decoded_lines(raw: Iterable[bytes | str], name: str) -> Iterator[tuple[int, str]]:
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


def _open_lines(source: str | os.PathLike | IO, max_bytes: int | None) -> tuple[Iterable, str]:
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


def _language(lang: str | None, name: str) -> str:
    if lang:
        return lang
    stem = Path(name).stem
    guess = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    if 2 <= len(guess) <= 3 and guess.isalpha() and guess.islower():
        return guess
    raise DataFormatError(
        "cannot tell the language of this file; pass it explicitly (e.g. --lang en)", path=name
    )


def _check_tags(tags: list[str], *, name: str, first_line: int, lines: list[int],
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
            raise DataFormatError(
                f"invalid IOB2: {what}; fix the file, or pass --repair-iob to turn stray "
                "I- tags into B-",
                path=name, line=lines[i],
            )
        tags, n = repair_iob2(tags)
        report.repaired_tags += n
    return tags


# --------------------------------------------------------------------------------------
# CoNLL / TSV
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
    lines, name = _open_lines(source, max_bytes)
    lang = _language(lang, name)
    report = report if report is not None else ReadReport(name)
    prefix = id_prefix if id_prefix is not None else f"{Path(name).stem}"
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
            checked = _check_tags(tags, name=name, first_line=token_lines[0], lines=token_lines,
                                  schema=schema, repair_iob=repair_iob, report=report)
        sent = Sentence.from_tokens(f"{prefix}-{index}", lang, tokens, checked,
                                    meta={"source_file": Path(name).name, "line": token_lines[0]})
        index += 1
        report.sentences += 1
        report.tokens += len(tokens)
        tokens, tags, token_lines = [], [], []
        return sent

    try:
        for number, line in _decoded_lines(lines, name):
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
    finally:
        if hasattr(lines, "close") and not hasattr(source, "read"):
            lines.close()
    if report.sentences == 0:
        raise DataFormatError("no sentences found (the file is empty or has only blank lines)",
                              path=name)


def read_conll(source, lang: str | None = None, **kwargs) -> list[Sentence]:
    """All sentences of a CoNLL/TSV file (see :func:`iter_conll` for the options)."""
    return list(iter_conll(source, lang, **kwargs))


def write_conll(sentences: Iterable[Sentence], path: str | os.PathLike | IO) -> int:
    """Write ``token<TAB>tag`` lines, a blank line between sentences. Returns the count."""
    n = 0
    with _writer(path) as out:
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


class _writer:
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


# --------------------------------------------------------------------------------------
# JSONL
# --------------------------------------------------------------------------------------
def iter_jsonl(
    source: str | os.PathLike | IO,
    lang: str | None = None,
    *,
    schema: LabelSchema | None = None,
    repair_iob: bool = False,
    id_prefix: str | None = None,
    max_bytes: int | None = None,
    snap_spans: bool = False,
    report: ReadReport | None = None,
) -> Iterator[Sentence]:
    """Stream sentences from JSONL. Each line is one of

    - ``{"tokens": [...], "ner_tags": [...]}`` (tags as IOB2 strings, or ids into
      ``schema.tags``; ``ner_tags`` may be absent for unlabelled text), or
    - ``{"text": "...", "spans": [{"start", "end", "label"}]}`` (character offsets).

    Optional keys: ``id``, ``lang``, ``meta``.
    """
    lines, name = _open_lines(source, max_bytes)
    report = report if report is not None else ReadReport(name)
    prefix = id_prefix if id_prefix is not None else Path(name).stem
    default_lang = lang
    try:
        for number, line in _decoded_lines(lines, name):
            if not line.strip():
                report.skipped["blank lines"] += 1
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"not valid JSON ({exc.msg} at column {exc.colno})",
                                      path=name, line=number) from None
            if not isinstance(obj, dict):
                raise DataFormatError("each line must be a JSON object", path=name, line=number)
            sent = _sentence_from_json(obj, name=name, line=number, default_lang=default_lang,
                                       prefix=prefix, index=report.sentences, schema=schema,
                                       repair_iob=repair_iob, snap=snap_spans, report=report)
            report.sentences += 1
            report.tokens += len(sent.tokens)
            yield sent
    finally:
        if not hasattr(source, "read"):
            lines.close()
    if report.sentences == 0:
        raise DataFormatError("no sentences found (the file is empty)", path=name)


def _sentence_from_json(obj: dict, *, name: str, line: int, default_lang: str | None,
                        prefix: str, index: int, schema: LabelSchema | None, repair_iob: bool,
                        snap: bool, report: ReadReport) -> Sentence:
    def fail(msg: str) -> DataFormatError:
        return DataFormatError(msg, path=name, line=line)

    lang = obj.get("lang") or default_lang
    if not lang:
        raise fail("no language: add a \"lang\" key or pass the language (e.g. --lang en)")
    sid = str(obj.get("id", f"{prefix}-{index}"))
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise fail("\"meta\" must be an object")
    meta = {**meta, "source_file": Path(name).name, "line": line}
    if "tokens" in obj:
        tokens = obj["tokens"]
        if not isinstance(tokens, list) or not tokens or not all(
            isinstance(t, str) and t for t in tokens
        ):
            raise fail("\"tokens\" must be a non-empty list of non-empty strings")
        raw = obj.get("ner_tags", obj.get("tags"))
        tags = None
        if raw is not None:
            if not isinstance(raw, list) or len(raw) != len(tokens):
                n = len(raw) if isinstance(raw, list) else "no list of"
                raise fail(f"{n} ner_tags for {len(tokens)} tokens; give one tag per token")
            if all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
                names = schema.tags if schema is not None else LabelSchema(["PER", "ORG", "LOC"]).tags
                if any(t < 0 or t >= len(names) for t in raw):
                    raise fail(f"tag id out of range 0..{len(names) - 1}")
                raw = [names[t] for t in raw]
            elif not all(isinstance(t, str) for t in raw):
                raise fail("ner_tags must be all strings (IOB2) or all integer ids")
            tags = _check_tags(list(raw), name=name, first_line=line, lines=[line] * len(raw),
                               schema=schema, repair_iob=repair_iob, report=report)
        return Sentence.from_tokens(sid, lang, tokens, tags, meta=meta)
    if "text" in obj:
        text = obj["text"]
        if not isinstance(text, str) or not text.strip():
            raise fail("\"text\" must be a non-empty string")
        spans = None
        if "spans" in obj:
            spans = []
            for sp in obj["spans"] or []:
                try:
                    start, end, label = int(sp["start"]), int(sp["end"]), str(sp["label"])
                except (KeyError, TypeError, ValueError):
                    raise fail("each span needs integer \"start\", \"end\" and a \"label\"") from None
                if not 0 <= start < end <= len(text):
                    raise fail(f"span {start}-{end} is outside the text (length {len(text)})")
                if schema is not None and label not in schema.entity_types:
                    raise fail(f"unknown label {label!r}; the project's labels are "
                               f"{schema.entity_types}")
                spans.append(Span(start, end, label))
        try:
            sent = Sentence.from_text(sid, lang, text, spans, snap=snap, meta=meta)
        except LabelSchemaError as exc:
            raise fail(str(exc)) from None
        return sent
    raise fail("each line needs \"tokens\" (with optional \"ner_tags\") or \"text\" "
               "(with optional \"spans\")")


def read_jsonl(source, lang: str | None = None, **kwargs) -> list[Sentence]:
    return list(iter_jsonl(source, lang, **kwargs))


def sentence_to_json(sent: Sentence, style: str = "tokens") -> dict:
    obj: dict = {"id": sent.id, "lang": sent.lang}
    if style == "tokens":
        obj["tokens"] = list(sent.tokens)
        if sent.tags is not None:
            obj["ner_tags"] = list(sent.tags)
    elif style == "spans":
        obj["text"] = sent.text
        obj["spans"] = [{"start": s.start, "end": s.end, "label": s.label} for s in sent.spans]
    else:
        raise ValueError(f"unknown JSONL style {style!r}: use 'tokens' or 'spans'")
    meta = {k: v for k, v in sent.meta.items() if k not in ("source_file", "line")}
    if meta:
        obj["meta"] = meta
    return obj


def write_jsonl(sentences: Iterable[Sentence], path, *, style: str = "tokens") -> int:
    n = 0
    with _writer(path) as out:
        for sent in sentences:
            out.write(json.dumps(sentence_to_json(sent, style), ensure_ascii=False) + "\n")
            n += 1
    return n


# --------------------------------------------------------------------------------------
# plain text (unlabelled target sentences)
# --------------------------------------------------------------------------------------
def iter_text_lines(source, lang: str, *, pretokenized: bool = False, id_prefix: str | None = None,
                    max_bytes: int | None = None, report: ReadReport | None = None
                    ) -> Iterator[Sentence]:
    """One sentence per line; tokenised with :func:`tokenize_text`, or split on whitespace
    when ``pretokenized``. Blank lines are skipped and counted."""
    lines, name = _open_lines(source, max_bytes)
    report = report if report is not None else ReadReport(name)
    prefix = id_prefix if id_prefix is not None else Path(name).stem
    try:
        for number, line in _decoded_lines(lines, name):
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


# --------------------------------------------------------------------------------------
# Hugging Face datasets
# --------------------------------------------------------------------------------------
def read_hf(
    source: str,
    lang: str,
    *,
    split: str = "train",
    config_name: str | None = None,
    schema: LabelSchema | None = None,
    repair_iob: bool = False,
    limit: int | None = None,
) -> list[Sentence]:
    """Sentences from a ``datasets`` source: a ``save_to_disk`` folder, parquet file(s), or a
    hub id such as ``unimelb-nlp/wikiann`` with a language config (``config_name``, default
    ``lang``). Needs ``tokens`` and ``ner_tags`` columns (ClassLabel ids or strings)."""
    import datasets

    path = Path(source)
    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
        elif path.suffix == ".parquet" or any(ch in source for ch in "*?"):
            ds = datasets.load_dataset("parquet", data_files=str(source))
        elif path.exists():
            raise DataFormatError("not a datasets folder or parquet file", path=source)
        else:
            ds = datasets.load_dataset(source, config_name or lang)
    except DataFormatError:
        raise
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as exc:
        raise DataFormatError(
            f"could not load the dataset ({type(exc).__name__}: {str(exc)[:200]}). A hub id "
            "needs internet access; offline, save it elsewhere with `save_to_disk` or as parquet "
            "and pass that path",
            path=source,
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataFormatError(f"no split {split!r}; it has {sorted(ds)}", path=source)
        ds = ds[split]
    for column in ("tokens", "ner_tags"):
        if column not in ds.column_names:
            raise DataFormatError(f"no {column!r} column; it has {ds.column_names}", path=source)
    feature = ds.features["ner_tags"]
    names = getattr(getattr(feature, "feature", None), "names", None)
    report = ReadReport(source)
    out = []
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in range(n):
        row = ds[i]
        raw = row["ner_tags"]
        if names is not None:
            raw = [names[t] for t in raw]
        elif raw and isinstance(raw[0], int):
            raw = (schema or LabelSchema(["PER", "ORG", "LOC"])).decode(raw)
        tags = _check_tags(list(raw), name=source, first_line=i + 1, lines=[i + 1] * len(raw),
                           schema=schema, repair_iob=repair_iob, report=report)
        sid = str(row.get("id", f"{Path(source).name}-{split}-{i}"))
        out.append(Sentence.from_tokens(sid, row.get("lang") or lang, row["tokens"], tags,
                                        meta={"source_file": source, "line": i + 1}))
    return out


# --------------------------------------------------------------------------------------
# dispatch
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
        f"cannot tell the format from the name; use .tsv/.conll, .jsonl or .parquet, "
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
