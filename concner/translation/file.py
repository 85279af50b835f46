"""User-provided translations (the ``file`` backend).

Accepted files:

- JSONL, one object per line, either already tagged
  ``{"source_id": "train-en-3", "tokens": [...], "ner_tags": [...]}`` or text with the
  HTML entity markers of :mod:`concner.translation.markers`
  ``{"source_id": "train-en-3", "text": "Vive en <b id=\"e1\">Nueva York</b>."}``
  (``e<k>`` is the k-th entity of the source sentence; its type comes from the source).
  ``source_id`` may be left out on every line: then line k belongs to source sentence k.
  An optional ``lang`` must equal the target language.
- TSV: ``source_id<TAB>text with markers`` per line; or, already tagged, CoNLL blocks
  (``token<TAB>tag`` lines, a blank line between sentences) in the order of the sources.
  The first line decides: a second column that is an IOB2 tag means CoNLL.

Malformed input (bad JSON, missing keys, unbalanced or unknown markers, tags that are not
IOB2, unknown or repeated source ids) raises :class:`DataFormatError` with file and line.
A source sentence the file has no translation for, or whose marked entity is missing from
the user's text, becomes a ``failed`` pair with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from concner.errors import DataFormatError, LabelSchemaError, MarkerError
from concner.labels import iob2_errors, split_tag
from concner.sentence import Sentence
from concner.translation.base import Progress, ProjectedPair, Status, Translator, failed
from concner.translation.markers import mark, project, read_markers


@dataclass
class _Record:
    line: int
    source_id: str | None
    text: str | None = None
    tokens: list[str] | None = None
    tags: list[str] | None = None


def _is_tag(value: str) -> bool:
    try:
        split_tag(value)
    except LabelSchemaError:
        return False
    return True


class FileTranslator(Translator):
    """Reads translations from a JSONL or TSV file; see the module docstring."""

    backend = "file"

    def __init__(self, path: str | Path, fmt: str = "auto"):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFormatError("the translations file does not exist", path=str(self.path))
        if fmt == "auto":
            fmt = "jsonl" if self.path.suffix.lower() in (".jsonl", ".json", ".ndjson") else "tsv"
        if fmt not in ("jsonl", "tsv"):
            raise DataFormatError(f"unknown translations format {fmt!r}: use jsonl or tsv",
                                  path=str(self.path))
        self.fmt = fmt
        self.model = str(self.path)

    # -- parsing ---------------------------------------------------------------------------
    def _fail(self, message: str, line: int) -> DataFormatError:
        return DataFormatError(message, path=str(self.path), line=line)

    def _lines(self) -> list[tuple[int, str]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            line = self.path.read_bytes()[:exc.start].count(b"\n") + 1
            raise self._fail("not UTF-8 text; save the file as UTF-8", line) from None
        return list(enumerate(text.splitlines(), 1))

    def records(self, target_lang: str) -> list[_Record]:
        """Parse and validate the whole file (raises :class:`DataFormatError`)."""
        lines = [(n, line) for n, line in self._lines()]
        if self.fmt == "jsonl":
            records = [self._json_record(n, line, target_lang) for n, line in lines
                       if line.strip()]
        else:
            first = next((line for _, line in lines if line.strip()), None)
            columns = first.split("\t") if first is not None else []
            if len(columns) == 2 and _is_tag(columns[1].strip()):
                records = self._conll_records(lines)
            else:
                records = [self._tsv_record(n, line) for n, line in lines if line.strip()]
        if not records:
            raise DataFormatError("no translations found (the file is empty)",
                                  path=str(self.path))
        with_ids = [r.source_id is not None for r in records]
        if any(with_ids) and not all(with_ids):
            bad = records[with_ids.index(False)].line
            raise self._fail("give a source_id on every line, or on none (then lines follow "
                             "the order of the source sentences)", bad)
        seen: dict[str, int] = {}
        for r in records:
            if r.source_id is not None:
                if r.source_id in seen:
                    raise self._fail(f"source_id {r.source_id!r} already used on line "
                                     f"{seen[r.source_id]}; keep one translation per sentence",
                                     r.line)
                seen[r.source_id] = r.line
        return records

    def _check_text(self, text: str, line: int) -> None:
        try:
            read_markers(text, "html")
        except MarkerError as exc:
            raise self._fail(f"entity markers: {exc}; mark entities as "
                             '<b id="e1">…</b>', line) from None

    def _json_record(self, n: int, line: str, target_lang: str) -> _Record:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise self._fail(f"not valid JSON ({exc.msg} at column {exc.colno})", n) from None
        if not isinstance(obj, dict):
            raise self._fail("each line must be a JSON object", n)
        if "lang" in obj and obj["lang"] != target_lang:
            raise self._fail(f"lang is {obj['lang']!r} but the target language is "
                             f"{target_lang!r}", n)
        sid = obj.get("source_id")
        sid = None if sid is None else str(sid)
        if "tokens" in obj:
            tokens, tags = obj["tokens"], obj.get("ner_tags", obj.get("tags"))
            if not isinstance(tokens, list) or not tokens or not all(
                    isinstance(t, str) and t.strip() for t in tokens):
                raise self._fail('"tokens" must be a non-empty list of non-empty strings', n)
            if not isinstance(tags, list) or len(tags) != len(tokens):
                raise self._fail('"ner_tags" must list one IOB2 tag per token', n)
            self._check_tags(tags, n)
            return _Record(n, sid, tokens=tokens, tags=tags)
        if "text" in obj:
            if not isinstance(obj["text"], str) or not obj["text"].strip():
                raise self._fail('"text" must be a non-empty string', n)
            self._check_text(obj["text"], n)
            return _Record(n, sid, text=obj["text"])
        raise self._fail('each line needs "text" (with entity markers) or "tokens" and '
                         '"ner_tags"', n)

    def _check_tags(self, tags: list, n: int) -> None:
        for tag in tags:
            if not isinstance(tag, str) or not _is_tag(tag):
                raise self._fail(f"{tag!r} is not an IOB2 tag (O, B-TYPE, I-TYPE)", n)
        problems = iob2_errors(tags)
        if problems:
            raise self._fail(f"invalid IOB2 at token {problems[0][0] + 1}: {problems[0][1]}", n)

    def _tsv_record(self, n: int, line: str) -> _Record:
        columns = line.split("\t")
        if len(columns) != 2 or not columns[0].strip() or not columns[1].strip():
            raise self._fail("expected 'source_id<TAB>translated text with markers' "
                             f"(found {len(columns)} column(s))", n)
        self._check_text(columns[1], n)
        return _Record(n, columns[0].strip(), text=columns[1])

    def _conll_records(self, lines: list[tuple[int, str]]) -> list[_Record]:
        records: list[_Record] = []
        current: _Record | None = None
        for n, line in lines + [(len(lines) + 1, "")]:
            if not line.strip():
                if current is not None:
                    self._check_tags(current.tags, current.line)  # type: ignore[arg-type]
                    records.append(current)
                    current = None
                continue
            columns = line.split("\t")
            if len(columns) != 2 or not columns[0].strip() or not _is_tag(columns[1].strip()):
                raise self._fail("expected 'token<TAB>IOB2 tag' (a blank line between "
                                 "sentences)", n)
            if current is None:
                current = _Record(n, None, tokens=[], tags=[])
            current.tokens.append(columns[0].strip())  # type: ignore[union-attr]
            current.tags.append(columns[1].strip())  # type: ignore[union-attr]
        return records

    # -- translation -----------------------------------------------------------------------
    def translate(self, sentences: list[Sentence], target_lang: str, *,
                  progress: Progress | None = None) -> list[ProjectedPair]:
        records = self.records(target_lang)
        if records[0].source_id is None:
            if len(records) > len(sentences):
                raise self._fail(f"{len(records)} translations for {len(sentences)} source "
                                 "sentences (lines follow the sources' order)",
                                 records[len(sentences)].line)
            by_source = {s.id: r for s, r in zip(sentences, records)}
        else:
            known = {s.id for s in sentences}
            for r in records:
                if r.source_id not in known:
                    raise self._fail(f"source_id {r.source_id!r} is not among the source "
                                     "sentences", r.line)
            by_source = {r.source_id: r for r in records}
        pairs = []
        for k, sentence in enumerate(sentences, 1):
            record = by_source.get(sentence.id)
            if record is None:
                pairs.append(failed(sentence, target_lang, f"no translation in {self.path.name}"))
            else:
                pairs.append(self._pair(sentence, record, target_lang))
            if progress is not None and (k % 100 == 0 or k == len(sentences)):
                progress(k, len(sentences))
        return pairs

    def _pair(self, sentence: Sentence, record: _Record, target_lang: str) -> ProjectedPair:
        tid = f"{sentence.id}-{target_lang}"
        if record.text is not None:
            _, refs = mark(sentence, "html")
            known = {r.id for r in refs}
            _, pieces = read_markers(record.text, "html")
            unknown = sorted({i for i, _, _ in pieces if i not in known})
            if unknown:
                raise self._fail(f"marker id(s) {[f'e{i}' for i in unknown]} but source "
                                 f"{sentence.id} has {len(refs)} entities", record.line)
            return project(sentence, record.text, refs, target_lang, style="html",
                           backend=self.backend, sentence_id=tid)
        meta = {"source_id": sentence.id, "projection": Status.OK.value, "backend": self.backend}
        translated = Sentence.from_tokens(tid, target_lang, record.tokens or [],
                                          record.tags if sentence.tags is not None else None,
                                          meta=meta)
        return ProjectedPair(sentence, translated, Status.OK, "", target_lang)
