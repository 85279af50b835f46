"""JSONL: ``{"tokens", "ner_tags"}`` or ``{"text", "spans"}`` per line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from concner.corpus.common import ReadReport, check_tags, decoded_lines, reading, writer
from concner.errors import DataFormatError, LabelSchemaError
from concner.labels import LabelSchema, Span
from concner.sentence import Sentence


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
    default_lang = lang
    expect = 'add one JSON object per line, with "tokens" or "text"'
    with reading(source, max_bytes, report, expect=expect) as (lines, name, counts):
        prefix = id_prefix if id_prefix is not None else Path(name).stem
        for number, line in decoded_lines(lines, name):
            if not line.strip():
                counts.skipped["blank lines"] += 1
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"not valid JSON ({exc.msg} at column {exc.colno})",
                                      path=name, line=number) from None
            if not isinstance(obj, dict):
                raise DataFormatError("each line must be a JSON object", path=name, line=number)
            sent = _sentence_from_json(obj, name=name, line=number, default_lang=default_lang,
                                       prefix=prefix, index=counts.sentences, schema=schema,
                                       repair_iob=repair_iob, snap=snap_spans, report=counts)
            counts.sentences += 1
            counts.tokens += len(sent.tokens)
            yield sent


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
                if schema is None:
                    raise fail("ner_tags are integer ids: give the label schema they index "
                               "(the project's labels), or write the tags as IOB2 strings")
                names = schema.tags
                if any(t < 0 or t >= len(names) for t in raw):
                    raise fail(f"tag id out of range 0..{len(names) - 1}")
                raw = [names[t] for t in raw]
            elif not all(isinstance(t, str) for t in raw):
                raise fail("ner_tags must be all strings (IOB2) or all integer ids")
            tags = check_tags(list(raw), name=name, first_line=line, lines=[line] * len(raw),
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
                    raise fail('each span needs integer "start", "end" and a "label"') from None
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
    with writer(path) as out:
        for sent in sentences:
            out.write(json.dumps(sentence_to_json(sent, style), ensure_ascii=False) + "\n")
            n += 1
    return n
