"""Label schema (ordered IOB2 tags) and exact conversion between tags and character spans.

Tags are IOB2 strings (``O``, ``B-PER``, ``I-PER``) at every boundary; integer ids only
inside tensors. Character offsets are Python code points.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from concner.errors import LabelSchemaError

OUTSIDE = "O"


@dataclass(frozen=True)
class Span:
    """An entity: ``text[start:end]`` has label ``label`` (an entity type, no B-/I- prefix)."""

    start: int
    end: int
    label: str
    score: float | None = None

    def key(self) -> tuple[int, int, str]:
        return (self.start, self.end, self.label)


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER" -> ("B", "PER")``; ``"O" -> ("O", None)``. Raises on anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    raise LabelSchemaError(f"tag {tag!r} is not IOB2: expected 'O', 'B-TYPE' or 'I-TYPE'")


def iob2_errors(tags: Sequence[str]) -> list[tuple[int, str]]:
    """Positions and descriptions of IOB2 violations (an ``I-X`` not after ``B-X``/``I-X``)."""
    problems = []
    previous_type: str | None = None
    for i, tag in enumerate(tags):
        prefix, etype = split_tag(tag)
        if prefix == "I" and previous_type != etype:
            before = tags[i - 1] if i else "the sentence start"
            problems.append((i, f"{tag!r} follows {before!r}"))
        previous_type = etype if prefix != OUTSIDE else None
    return problems


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Turn every stray ``I-X`` into ``B-X``. Returns the repaired tags and how many changed."""
    fixed = list(tags)
    for i, _ in iob2_errors(tags):
        fixed[i] = "B-" + fixed[i][2:]
    return fixed, len(iob2_errors(tags))


class LabelSchema:
    """Ordered IOB2 tag set built from entity types.

    ``LabelSchema(["PER", "ORG", "LOC"]).tags == ["O", "B-PER", "I-PER", "B-ORG", ...]``.
    """

    def __init__(self, entity_types: Iterable[str]):
        types = list(entity_types)
        if not types:
            raise LabelSchemaError("a label schema needs at least one entity type, e.g. PER")
        seen = set()
        for t in types:
            if not isinstance(t, str) or not t or t == OUTSIDE or any(c.isspace() for c in t):
                raise LabelSchemaError(f"entity type {t!r} is not a valid name (use e.g. 'PER')")
            if t in seen:
                raise LabelSchemaError(f"entity type {t!r} is listed twice")
            seen.add(t)
        self.entity_types: list[str] = types
        self.tags: list[str] = [OUTSIDE] + [f"{p}-{t}" for t in types for p in "BI"]
        self.tag_to_id: dict[str, int] = {t: i for i, t in enumerate(self.tags)}

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_tags(cls, tags: Iterable[str]) -> LabelSchema:
        """Schema holding every entity type that appears in ``tags`` (first-seen order kept
        for the canonical PER/ORG/LOC ordering when they are all present)."""
        types: list[str] = []
        for tag in tags:
            _, etype = split_tag(tag)
            if etype is not None and etype not in types:
                types.append(etype)
        canonical = ["PER", "ORG", "LOC"]
        if set(canonical) <= set(types):
            types = canonical + sorted(t for t in types if t not in canonical)
        return cls(types)

    def to_dict(self) -> dict:
        return {"entity_types": list(self.entity_types), "tags": list(self.tags)}

    @classmethod
    def from_dict(cls, data: dict) -> LabelSchema:
        try:
            return cls(data["entity_types"])
        except (KeyError, TypeError) as exc:
            raise LabelSchemaError(f"label schema is missing 'entity_types': {data!r}") from exc

    def __len__(self) -> int:
        return len(self.tags)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSchema) and other.tags == self.tags

    def __repr__(self) -> str:
        return f"LabelSchema({self.entity_types!r})"

    # -- ids ---------------------------------------------------------------------------
    def check_tags(self, tags: Sequence[str]) -> None:
        """Raise :class:`LabelSchemaError` on an unknown tag or an IOB2 violation."""
        for i, tag in enumerate(tags):
            if tag not in self.tag_to_id:
                split_tag(tag)  # raises if not IOB2 at all
                raise LabelSchemaError(
                    f"unknown label {tag!r} at token {i + 1}; the schema has {self.entity_types}"
                )
        problems = iob2_errors(tags)
        if problems:
            i, what = problems[0]
            raise LabelSchemaError(f"invalid IOB2 at token {i + 1}: {what} (repair: I- to B-)")

    def encode(self, tags: Sequence[str]) -> list[int]:
        try:
            return [self.tag_to_id[t] for t in tags]
        except KeyError as exc:
            raise LabelSchemaError(
                f"unknown label {exc.args[0]!r}; the schema has {self.entity_types}"
            ) from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tags[int(i)] for i in ids]

    def decode_valid(self, ids: Iterable[int]) -> list[str]:
        """Decode model output ids and repair stray ``I-`` into ``B-`` (always valid IOB2)."""
        return repair_iob2(self.decode(ids))[0]

    # -- spans -------------------------------------------------------------------------
    def tags_to_spans(self, tags: Sequence[str], offsets: Sequence[tuple[int, int]]) -> list[Span]:
        return tags_to_spans(tags, offsets)

    def spans_to_tags(
        self, spans: Sequence[Span], offsets: Sequence[tuple[int, int]], *, snap: bool = False
    ) -> list[str]:
        tags, _ = spans_to_tags(spans, offsets, snap=snap)
        self.check_tags(tags)
        return tags


def tags_to_spans(tags: Sequence[str], offsets: Sequence[tuple[int, int]]) -> list[Span]:
    """Character spans of the entities in an IOB2 sequence.

    ``offsets[i] = (start, end)`` of token i in the text. A stray ``I-X`` starts a new
    entity (as seqeval's lenient reading does); validate first for strictness.
    """
    if len(tags) != len(offsets):
        raise LabelSchemaError(f"{len(tags)} tags for {len(offsets)} tokens")
    spans: list[Span] = []
    start = end = None
    current: str | None = None
    for tag, (s, e) in zip(tags, offsets):
        prefix, etype = split_tag(tag)
        if prefix == "I" and etype == current:
            end = e
            continue
        if current is not None:
            spans.append(Span(start, end, current))
        if prefix == OUTSIDE:
            current = None
        else:
            current, start, end = etype, s, e
    if current is not None:
        spans.append(Span(start, end, current))
    return spans


def spans_to_tags(
    spans: Sequence[Span], offsets: Sequence[tuple[int, int]], *, snap: bool = False
) -> tuple[list[str], int]:
    """IOB2 tags for character spans over tokens at ``offsets``.

    A span must start at a token start and end at a token end. With ``snap=True`` a span
    that does not is widened to the tokens it overlaps, and the number of snapped spans is
    returned; otherwise :class:`LabelSchemaError` is raised. Overlapping spans raise.
    Returns ``(tags, n_snapped)``.
    """
    tags = [OUTSIDE] * len(offsets)
    snapped = 0
    for span in sorted(spans, key=lambda sp: (sp.start, sp.end)):
        covered = [i for i, (s, e) in enumerate(offsets) if s < span.end and e > span.start]
        if not covered:
            raise LabelSchemaError(
                f"span {span.start}-{span.end} ({span.label}) covers no token; remove it"
            )
        exact = offsets[covered[0]][0] == span.start and offsets[covered[-1]][1] == span.end
        if not exact:
            if not snap:
                raise LabelSchemaError(
                    f"span {span.start}-{span.end} ({span.label}) does not fall on token "
                    "boundaries; adjust it to whole tokens"
                )
            snapped += 1
        for k, i in enumerate(covered):
            if tags[i] != OUTSIDE:
                raise LabelSchemaError(
                    f"span {span.start}-{span.end} ({span.label}) overlaps another entity"
                )
            tags[i] = ("B-" if k == 0 else "I-") + span.label
    return tags, snapped
