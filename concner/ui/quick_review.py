"""Quick review: one sentence at a time, one decision per predicted span, single keys.

For the highest-ranked sentences nobody has labelled yet (the active-learning order of
the Review page), the user walks through the model's predicted spans and accepts,
rejects or relabels each one (Prodigy/INCEpTION-style single-key decisions; Argilla stays
the editor for anything else, e.g. a missed entity). When the last span is decided, the
sentence's tags (IOB2, always valid: a whole span becomes ``O`` or ``B-X I-X ...``) are
stored as that user's correction, like a pulled Argilla answer, so retraining counts it.

Pure logic (no Streamlit): :class:`QuickReview` holds one sentence's decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from concner.errors import ConfigError, LabelSchemaError
from concner.labels import Span, tags_to_spans

#: single keys of the page's buttons (Streamlit reserves C and R); labels get 1..9
ACCEPT_KEY, REJECT_KEY, UNDO_KEY, SKIP_KEY = "A", "X", "U", "S"
#: at most this many entity types get a digit key (1..9)
MAX_LABEL_KEYS = 9


def label_keys(labels: Sequence[str]) -> dict[str, str]:
    """``{entity type: digit key}`` for relabelling: ``1`` for the first type, and so on
    (the first :data:`MAX_LABEL_KEYS` types; the others have a button only)."""
    return {lab: str(i + 1) for i, lab in enumerate(labels[:MAX_LABEL_KEYS])}


def token_spans(tags: Sequence[str]) -> list[Span]:
    """The entities of an IOB2 tag sequence over token indices (``end`` exclusive; a
    stray ``I-`` starts an entity, as :func:`concner.labels.tags_to_spans` reads it)."""
    return tags_to_spans(tags, [(i, i + 1) for i in range(len(tags))])


@dataclass
class QuickReview:
    """One sentence's walk through its predicted spans.

    ``decisions[i]`` is ``None`` (rejected) or the label span ``i`` keeps (its own when
    accepted, another when relabelled); :attr:`current` is the next span to decide."""

    tokens: list[str]
    predicted: list[str]
    labels: list[str]
    spans: list[Span] = field(init=False)
    decisions: list[str | None] = field(init=False, default_factory=list)

    def __post_init__(self):
        if len(self.tokens) != len(self.predicted):
            raise LabelSchemaError(f"{len(self.predicted)} predicted tags for "
                                   f"{len(self.tokens)} tokens")
        self.spans = token_spans(self.predicted)

    @property
    def current(self) -> int | None:
        """Index of the span to decide next, or None when every span is decided."""
        n = len(self.decisions)
        return n if n < len(self.spans) else None

    @property
    def done(self) -> bool:
        return self.current is None

    def accept(self) -> None:
        self._decide(self._span().label)

    def reject(self) -> None:
        self._decide(None)

    def relabel(self, label: str) -> None:
        if label not in self.labels:
            raise LabelSchemaError(f"unknown entity type {label!r}; one of {self.labels}")
        self._decide(label)

    def undo(self) -> None:
        """Take back the last decision (nothing to take back: no change)."""
        if self.decisions:
            self.decisions.pop()

    def _span(self) -> Span:
        if self.current is None:
            raise LabelSchemaError("every predicted span of this sentence is decided already")
        return self.spans[self.current]

    def _decide(self, label: str | None) -> None:
        self._span()
        self.decisions.append(label)

    def tags(self) -> list[str]:
        """The sentence's tags after the decisions (undecided spans are kept as predicted):
        ``O`` outside the kept spans, ``B-X`` then ``I-X`` over each kept span."""
        out = ["O"] * len(self.tokens)
        for k, span in enumerate(self.spans):
            label = self.decisions[k] if k < len(self.decisions) else span.label
            if label is None:
                continue
            out[span.start] = f"B-{label}"
            for i in range(span.start + 1, span.end):
                out[i] = f"I-{label}"
        return out

    def summary(self) -> str:
        """What was decided, e.g. ``2 accepted, 1 rejected, 1 relabelled``."""
        acc = sum(d == s.label for d, s in zip(self.decisions, self.spans))
        rej = sum(d is None for d in self.decisions)
        rel = len(self.decisions) - acc - rej
        return f"{acc} accepted, {rej} rejected, {rel} relabelled"


def queue(rows: Sequence, size: int) -> list:
    """The sentences to review: the first ``size`` review rows nobody has labelled, in
    the order given (the page passes them in the active-learning order)."""
    return [r for r in rows if r.corrected is None][:size]


def save(store, project: str, sentence_id: str, review: QuickReview, author: str) -> int:
    """Store the decided tags as ``author``'s correction (the store path pulled Argilla
    answers take, :meth:`~concner.store.Store.add_annotation`, with origin
    ``correction``: a person's label, counted by consensus and by retraining like an
    Argilla answer); returns the annotation id."""
    if not author.strip():
        raise ConfigError("type your name in 'Your name' first: it is stored as the author "
                          "of your decisions")
    if not review.done:
        raise LabelSchemaError(f"{len(review.spans) - len(review.decisions)} predicted spans "
                               "of this sentence are not decided yet")
    return store.add_annotation(project, sentence_id, review.tags(), author=author.strip(),
                                origin="correction")


def span_text(text: str, offsets: Sequence[tuple[int, int]], span: Span) -> str:
    """The words of a token span in the sentence text."""
    return text[offsets[span.start][0]:offsets[span.end - 1][1]]
