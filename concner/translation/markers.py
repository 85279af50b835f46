"""Marker-based label projection: wrap source entities in markers the MT engine keeps,
read the markers back from the translation, merge or repair pieces, and tag the result.

Two marker styles:

- ``html`` (Apertium ``-f html``): ``<b id="e1">New York City</b>``; ids survive, so an
  entity that comes back in pieces is reassembled by id. ``&``, ``<`` and ``>`` in the
  text are escaped before translation and unescaped after. Entities whose type is in
  ``protect`` are sent as a placeholder word (``Zx1q``) that the engine passes through as
  an unknown word, and put back afterwards (person names: Apertium turns "Smith" into
  "Herrero" and drops "Will"). Apertium's own way, ``<script>`` superblanks, also works
  but made its pipeline four times slower.
- ``bracket`` (neural MT): ``[New York City]``; no ids (neural models mangle them), so
  pieces are matched to source entities in order, or by text similarity when the model
  reordered entities of different types. Literal ``[``/``]`` in the source become ``(``/``)``.

Rules applied when reading markers back (each non-``ok`` outcome names itself in the
pair's ``reason``):

1. One non-empty piece per entity, balanced markers, spans on token boundaries: ``ok``.
2. An entity in several pieces (same id): if only function words lie between consecutive
   pieces (at most :data:`MAX_GAP_TOKENS` tokens, each punctuation, a listed function word
   or a word of at most 3 letters not starting with a capital, so caseless scripts count) the span runs from the first piece to the
   last ("Ciudad de Nueva York"); otherwise the longest piece is kept. Either way:
   ``repaired``.
3. An entity whose marker vanished or came back empty: if the entity's source text occurs
   verbatim (whole words, outside other entities) in the translation, that occurrence is
   tagged (``repaired``); otherwise the pair ``failed`` (a real entity would be tagged O).
4. A listed function word the engine moved to the edge of a marker is trimmed off
   ("<b>e imperio Unido</b>" -> "imperio Unido"), unless the source entity itself starts
   or ends with one (``repaired``).
5. A span that does not fall on token boundaries is widened to whole tokens (``repaired``).
6. Unbalanced or nested markers, unknown ids, overlapping entities, a protected entity's
   placeholder missing from the output, an empty translation:
   ``failed``.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass
from itertools import pairwise

from concner.errors import LabelSchemaError, MarkerError
from concner.labels import Span, spans_to_tags, split_tag
from concner.sentence import Sentence, tokenize_text
from concner.translation.base import ProjectedPair, Status, failed

MARKER_STYLES = ("html", "bracket")

#: At most this many tokens may separate two pieces of one entity for them to be merged.
MAX_GAP_TOKENS = 3

#: Function words that may sit between two pieces of one entity (rule 2), per language.
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "es": frozenset(["de", "del", "la", "el", "los", "las", "y", "e", "en", "a", "al", "da",
                     "do", "das", "dos"]),
    "ca": frozenset(["de", "del", "la", "el", "els", "les", "i", "a", "al", "d", "l"]),
    "gl": frozenset(["de", "do", "da", "dos", "das", "e", "a", "o", "os", "as"]),
    "pt": frozenset(["de", "do", "da", "dos", "das", "e", "a", "o", "os", "as", "em", "no", "na"]),
    "fr": frozenset(["de", "du", "des", "la", "le", "les", "et", "à", "au", "aux", "d", "l"]),
    "it": frozenset(["di", "del", "della", "dei", "degli", "delle", "la", "il", "lo", "e", "a",
                     "al"]),
    "de": frozenset(["der", "die", "das", "des", "dem", "den", "von", "vom", "zu", "zur", "zum",
                     "und", "in", "im", "am"]),
    "nl": frozenset(["de", "het", "van", "der", "den", "en", "in", "op"]),
    "en": frozenset(["of", "the", "and", "in", "on", "at", "for"]),
}
_PUNCT_GAP = re.compile(r"^[\W_]+$", re.UNICODE)


@dataclass(frozen=True)
class EntityRef:
    """A source entity as sent to the engine: marker id (1-based), type, source text, and
    the placeholder sent instead of the text when the entity's type is protected."""

    id: int
    label: str
    text: str
    placeholder: str | None = None


# --------------------------------------------------------------------------------------
# insertion
# --------------------------------------------------------------------------------------
_NO_SPACE_BEFORE = frozenset(",.;:!?)]}%»”")
_NO_SPACE_AFTER = frozenset("([{«“¿¡")


def entity_token_ranges(tags: list[str]) -> list[tuple[int, int, str]]:
    """``(first_token, end_token, label)`` per entity in an IOB2 sequence (a stray ``I-``
    starts a new entity)."""
    ranges: list[tuple[int, int, str]] = []
    current: list | None = None
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix == "I" and current is not None and current[2] == label:
            current[1] = i + 1
            continue
        if current is not None:
            ranges.append(tuple(current))  # type: ignore[arg-type]
            current = None
        if label is not None:
            current = [i, i + 1, label]
    if current is not None:
        ranges.append(tuple(current))  # type: ignore[arg-type]
    return ranges


def _detokenize(tokens: list[str], start: int, end: int, previous: str | None) -> str:
    """Join tokens like running text: no space before ``,.)`` etc. or after ``(``."""
    out = []
    for tok in tokens[start:end]:
        if previous is not None and not (tok in _NO_SPACE_BEFORE or previous in _NO_SPACE_AFTER
                                         or tok.startswith("'") and len(tok) <= 3):
            out.append(" ")
        out.append(tok)
        previous = tok
    return "".join(out)


def mark(sentence: Sentence, style: str = "html", *, protect: frozenset[str] = frozenset()
         ) -> tuple[str, list[EntityRef]]:
    """The engine input for ``sentence`` with its entities wrapped in markers.

    Returns ``(text, refs)``; ``refs[k].id == k + 1``. Unlabelled sentences get no markers.
    """
    if style not in MARKER_STYLES:
        raise ValueError(f"unknown marker style {style!r}; use one of {MARKER_STYLES}")
    tokens = sentence.tokens
    if style == "bracket":
        tokens = [t.replace("[", "(").replace("]", ")") for t in tokens]
    ranges = entity_token_ranges(sentence.tags) if sentence.tags is not None else []
    escape = html.escape if style == "html" else (lambda s, quote=False: s)
    parts: list[str] = []
    refs: list[EntityRef] = []
    position = 0
    previous: str | None = None
    stem = "Zx"  # placeholders must not occur in the sentence itself
    while stem.lower() in " ".join(tokens).lower():
        stem += "x"

    def plain(start: int, end: int) -> None:
        nonlocal previous
        if start < end:
            parts.append(escape(_detokenize(tokens, start, end, previous), quote=False))
            previous = tokens[end - 1]

    for k, (start, end, label) in enumerate(ranges, 1):
        plain(position, start)
        if previous is not None and tokens[start] not in _NO_SPACE_BEFORE \
                and previous not in _NO_SPACE_AFTER:
            parts.append(" ")
        text = _detokenize(tokens, start, end, None)
        placeholder = f"{stem}{k}q" if label in protect else None
        refs.append(EntityRef(k, label, text, placeholder))
        inner = placeholder or escape(text, quote=False)
        parts.append(f'<b id="e{k}">{inner}</b>' if style == "html" else f"[{inner}]")
        previous = tokens[end - 1]
        position = end
    plain(position, len(tokens))
    return "".join(parts), refs


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------
_HTML_TAG = re.compile(r'<b id="e(\d+)">|</b>|<[^<>]*>')
_BRACKET = re.compile(r"[\[\]]")


def _normalise(raw: str) -> tuple[str, list[int]]:
    """Collapse whitespace runs to one space and strip; ``mapping[i]`` is the position in
    the result of raw character ``i`` (``len(raw) + 1`` entries)."""
    out: list[str] = []
    mapping = []
    for ch in raw:
        mapping.append(len(out))
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(ch)
    mapping.append(len(out))
    text = "".join(out)
    stripped = text.rstrip()
    return stripped, [min(m, len(stripped)) for m in mapping]


def read_markers(output: str, style: str = "html") -> tuple[str, list[tuple[int | None, int, int]]]:
    """Plain text of an engine output and its marked pieces ``(id, start, end)``.

    ``id`` is ``None`` for bracket markers. Whitespace is normalised (runs collapsed,
    ends stripped) and piece boundaries trimmed of spaces. Raises :class:`MarkerError` on
    nested, unclosed or stray-closing markers.
    """
    raw: list[str] = []
    length = 0
    pieces: list[tuple[int | None, int, int]] = []
    open_id: int | None = None
    open_at: int | None = None
    pattern = _HTML_TAG if style == "html" else _BRACKET
    pos = 0
    for m in pattern.finditer(output):
        segment = output[pos:m.start()]
        if style == "html":
            segment = html.unescape(segment)
        raw.append(segment)
        length += len(segment)
        pos = m.end()
        token = m.group()
        opening = (m.group(1) is not None) if style == "html" else token == "["
        closing = token == "</b>" if style == "html" else token == "]"
        if opening:
            if open_at is not None:
                raise MarkerError("nested entity markers")
            open_id = int(m.group(1)) if style == "html" else None
            open_at = length
        elif closing:
            if open_at is None:
                raise MarkerError("a closing marker without an opening one")
            pieces.append((open_id, open_at, length))
            open_at = open_id = None
        # any other tag (an artefact of the engine) is dropped
    tail = output[pos:]
    raw.append(html.unescape(tail) if style == "html" else tail)
    if open_at is not None:
        raise MarkerError("an entity marker is never closed")
    raw_text = "".join(raw)
    text, mapping = _normalise(raw_text)
    trimmed = []
    for ident, s, e in pieces:
        s, e = mapping[s], mapping[e]
        while s < e and text[s] == " ":
            s += 1
        while e > s and text[e - 1] == " ":
            e -= 1
        trimmed.append((ident, s, e))
    return text, trimmed


def _is_function_gap(gap: str, lang: str) -> bool:
    tokens, _ = tokenize_text(gap, lang)
    if len(tokens) > MAX_GAP_TOKENS:
        return False
    words = FUNCTION_WORDS.get(lang, frozenset())
    return all(_PUNCT_GAP.match(t) or t.lower() in words or (not t[0].isupper() and len(t) <= 3)
               for t in tokens)


def _trim_function_words(text: str, start: int, end: int, source_text: str, source_lang: str,
                         target_lang: str) -> tuple[int, int]:
    """Drop listed function words the engine moved to the edge of an entity marker
    ("<b>e imperio Unido</b>" for "and <b>United Empire</b>"), unless the source entity
    itself starts/ends with one. Never empties the span."""
    words = FUNCTION_WORDS.get(target_lang, frozenset())
    source_words = source_text.split()
    source_fn = FUNCTION_WORDS.get(source_lang, frozenset())
    keep_first = bool(source_words) and source_words[0].lower() in source_fn
    keep_last = bool(source_words) and source_words[-1].lower() in source_fn
    while not keep_first:
        m = re.match(r"(\S+)\s+", text[start:end])
        if m is None or m.group(1) not in words:
            break
        start += m.end()
    while not keep_last:
        m = re.search(r"\s+(\S+)$", text[start:end])
        if m is None or m.group(1) not in words:
            break
        end = start + m.start()
    return start, end


def _find_verbatim(text: str, needle: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    if not needle:
        return None
    for m in re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)", text):
        s, e = m.span()
        if all(e <= a or s >= b for a, b in taken):
            return s, e
    return None


def _assign_brackets(pieces, refs, text) -> tuple[list[tuple[int, int, int]], list[str]]:
    """Match id-less bracket pieces to refs: in order, unless text similarity says the
    engine swapped entities of different types."""
    if len(pieces) != len(refs):
        raise MarkerError(f"{len(pieces)} bracketed pieces for {len(refs)} entities")
    in_order = [(ref.id, s, e) for ref, (_, s, e) in zip(refs, pieces)]
    if len({r.label for r in refs}) <= 1:
        return in_order, []

    def sim(ref, piece):
        return difflib.SequenceMatcher(None, ref.text.lower(), text[piece[1]:piece[2]].lower()).ratio()

    order_score = sum(sim(r, p) for r, p in zip(refs, pieces))
    left = list(range(len(pieces)))
    greedy = []
    for ref in refs:
        best = max(left, key=lambda j: sim(ref, pieces[j]))
        left.remove(best)
        greedy.append((ref.id, pieces[best][1], pieces[best][2]))
    greedy_score = sum(sim(r, (None, s, e)) for r, (_, s, e) in zip(refs, greedy))
    if greedy != in_order and greedy_score > order_score + 0.5:
        return greedy, ["entities matched by text similarity (the engine reordered them)"]
    return in_order, []


def project(source: Sentence, output: str, refs: list[EntityRef], target_lang: str, *,
            style: str = "html", backend: str = "", sentence_id: str | None = None
            ) -> ProjectedPair:
    """Read the markers of one engine ``output`` and build the tagged translation.

    ``refs`` are the entities :func:`mark` wrapped. The translation's ``meta`` holds
    ``source_id``, ``projection`` (status), ``backend`` and, when repaired, ``reason``.
    """
    for ref in refs:
        if ref.placeholder is not None:
            if ref.placeholder not in output:
                return failed(source, target_lang, f"protected entity e{ref.id} ({ref.label} "
                              f"{ref.text!r}) was altered or lost by the engine")
            original = html.escape(ref.text, quote=False) if style == "html" else ref.text
            output = output.replace(ref.placeholder, original)
    try:
        text, pieces = read_markers(output, style)
    except MarkerError as exc:
        return failed(source, target_lang, str(exc))
    if not text:
        return failed(source, target_lang, "the translation is empty")
    repairs: list[str] = []
    by_id = {r.id: r for r in refs}
    try:
        if style == "bracket":
            assigned, notes = _assign_brackets(pieces, refs, text)
            repairs += notes
        else:
            assigned = list(pieces)  # type: ignore[arg-type]
            unknown = sorted({i for i, _, _ in assigned if i not in by_id})
            if unknown:
                raise MarkerError(f"unknown entity marker id(s) {unknown}")
    except MarkerError as exc:
        return failed(source, target_lang, str(exc))
    chosen: dict[int, tuple[int, int]] = {}
    for ref in refs:
        parts = sorted((s, e) for i, s, e in assigned if i == ref.id and e > s)
        if len(parts) == 1:
            chosen[ref.id] = parts[0]
        elif len(parts) > 1:
            gaps_ok = all(_is_function_gap(text[a[1]:b[0]], target_lang)
                          for a, b in pairwise(parts))
            if gaps_ok:
                chosen[ref.id] = (parts[0][0], parts[-1][1])
                repairs.append(f"e{ref.id} came back in {len(parts)} pieces, merged")
            else:
                chosen[ref.id] = max(parts, key=lambda p: p[1] - p[0])
                repairs.append(f"e{ref.id} came back in {len(parts)} pieces, kept the longest")
    for ref in refs:
        if ref.id in chosen:
            continue
        found = _find_verbatim(text, ref.text, list(chosen.values()))
        if found is None:
            return failed(source, target_lang,
                          f"entity e{ref.id} ({ref.label} {ref.text!r}) lost in translation")
        chosen[ref.id] = found
        repairs.append(f"e{ref.id} marker lost; found its text")
    for ident, (s, e) in list(chosen.items()):
        trimmed = _trim_function_words(text, s, e, by_id[ident].text, source.lang, target_lang)
        if trimmed != (s, e):
            chosen[ident] = trimmed
            repairs.append(f"e{ident} function word moved inside the marker, trimmed")
    spans = [Span(s, e, by_id[i].label) for i, (s, e) in chosen.items()]
    tokens, offsets = tokenize_text(text, target_lang)
    if not tokens:
        return failed(source, target_lang, "the translation has no tokens")
    try:
        tags, snapped = spans_to_tags(spans, offsets, snap=True)
    except LabelSchemaError as exc:
        return failed(source, target_lang, f"entities overlap in the translation ({exc})")
    if snapped:
        repairs.append(f"{snapped} span(s) widened to token boundaries")
    status = Status.REPAIRED if repairs else Status.OK
    reason = "; ".join(repairs)
    meta = {"source_id": source.id, "projection": status.value, "backend": backend}
    if reason:
        meta["reason"] = reason
    translated = Sentence(sentence_id or f"{source.id}-{target_lang}", target_lang, tokens,
                          tags if source.tags is not None else None, text, offsets, meta)
    return ProjectedPair(source, translated, status, reason, target_lang)
