"""The one sentence type used everywhere, and text <-> token helpers.

A :class:`Sentence` holds tokens, optional IOB2 tags, and the text the tokens came from
with each token's character offsets (Python code points), so tags and character spans
convert exactly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from concner.errors import LabelSchemaError
from concner.labels import Span, spans_to_tags, tags_to_spans

#: Languages written without spaces between words: tokens are joined with "".
NO_SPACE_LANGS: frozenset[str] = frozenset({"zh", "ja", "th", "lo", "km", "my"})


def joiner_for(lang: str | None, no_space_langs: frozenset[str] = NO_SPACE_LANGS) -> str:
    return "" if lang in no_space_langs else " "


@dataclass
class Sentence:
    """One sentence.

    Attributes:
        id: stable identifier (unique within a corpus).
        lang: ISO 639-1 code.
        tokens: the words, as strings (never empty strings).
        tags: IOB2 tags, one per token, or ``None`` when unlabelled.
        text: the sentence text; ``text[s:e] == tokens[i]`` for ``(s, e) = offsets[i]``.
        offsets: per-token ``(start, end)`` character offsets into ``text``.
        meta: free-form metadata carried through I/O (source id, projection status, ...).
    """

    id: str
    lang: str
    tokens: list[str]
    tags: list[str] | None = None
    text: str = ""
    offsets: list[tuple[int, int]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise LabelSchemaError(
                f"sentence {self.id}: {len(self.tags)} tags for {len(self.tokens)} tokens"
            )
        if not self.offsets and self.tokens:
            self.text, self.offsets = join_tokens(self.tokens, joiner_for(self.lang))
        if len(self.offsets) != len(self.tokens):
            raise LabelSchemaError(f"sentence {self.id}: offsets do not match tokens")

    @classmethod
    def from_tokens(
        cls,
        id: str,
        lang: str,
        tokens: Sequence[str],
        tags: Sequence[str] | None = None,
        *,
        joiner: str | None = None,
        meta: dict | None = None,
    ) -> Sentence:
        """Build text and offsets by joining tokens (space, or nothing for zh/ja/th)."""
        text, offsets = join_tokens(tokens, joiner_for(lang) if joiner is None else joiner)
        return cls(id, lang, list(tokens), None if tags is None else list(tags), text, offsets,
                   dict(meta or {}))

    @classmethod
    def from_text(
        cls,
        id: str,
        lang: str,
        text: str,
        spans: Sequence[Span] | None = None,
        *,
        snap: bool = False,
        meta: dict | None = None,
    ) -> Sentence:
        """Tokenise raw text (see :func:`tokenize_text`) and turn character spans into tags."""
        tokens, offsets = tokenize_text(text, lang)
        tags = None
        if spans is not None:
            tags, _ = spans_to_tags(spans, offsets, snap=snap)
        return cls(id, lang, tokens, tags, text, offsets, dict(meta or {}))

    @property
    def spans(self) -> list[Span]:
        """Entity spans (character offsets into ``text``); empty when unlabelled."""
        return [] if self.tags is None else tags_to_spans(self.tags, self.offsets)

    def with_tags(self, tags: Sequence[str] | None) -> Sentence:
        return replace(self, tags=None if tags is None else list(tags), meta=dict(self.meta))

    def __len__(self) -> int:
        return len(self.tokens)


def join_tokens(tokens: Sequence[str], joiner: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """Join tokens into text; returns ``(text, offsets)``."""
    offsets = []
    pos = 0
    parts = []
    for i, tok in enumerate(tokens):
        if i:
            parts.append(joiner)
            pos += len(joiner)
        offsets.append((pos, pos + len(tok)))
        parts.append(tok)
        pos += len(tok)
    return "".join(parts), offsets


# Word characters plus combining marks and joiners stay together; any other
# non-space character (punctuation, symbols, emoji) is a token of its own.
_WORD = r"[\w\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u064b-\u065f\u0900-\u0dff\u200c\u200d]+"
_TOKEN_RE = re.compile(rf"{_WORD}(?:['’]{_WORD})*|\S", re.UNICODE)


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F") and ch.isalnum()


def tokenize_text(text: str, lang: str | None = None) -> tuple[list[str], list[tuple[int, int]]]:
    """Split raw text into tokens with character offsets.

    Whitespace separates tokens and punctuation/symbols are tokens of their own; in
    languages written without spaces (zh, ja, th...) each CJK character is a token, as in
    WikiAnn. Combining marks stay attached to their base character. Returns
    ``(tokens, offsets)``.
    """
    tokens: list[str] = []
    offsets: list[tuple[int, int]] = []
    per_char = lang in NO_SPACE_LANGS
    for m in _TOKEN_RE.finditer(text):
        s, e = m.span()
        piece = m.group()
        if per_char and any(_is_cjk(c) for c in piece):
            i = s
            while i < e:
                j = i + 1
                while j < e and unicodedata.combining(text[j]):
                    j += 1
                tokens.append(text[i:j])
                offsets.append((i, j))
                i = j
            continue
        tokens.append(piece)
        offsets.append((s, e))
    return tokens, offsets
