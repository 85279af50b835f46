"""Which version of a sentence's labels counts: the *current* annotation.

All versions are kept in the ``annotations`` table. The current labels are derived:

- each author contributes their latest version;
- imported labels (origin ``import``) only count when no person has labelled the
  sentence (an annotator's work supersedes the file it started from);
- one voter: their latest version; several: the tag sequence most of them chose, ties
  broken by recency; ``agreement`` is the share of voters who chose it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class AnnotationLike(Protocol):
    id: int
    tags: Sequence[str]
    author: str
    origin: str


@dataclass(frozen=True)
class CurrentLabel:
    tags: list[str]
    annotation_id: int  # the version whose tags were chosen (latest among the majority)
    n_voters: int
    agreement: float  # in (0, 1]; 1.0 when there is one voter


def current_label(versions: Iterable[AnnotationLike]) -> CurrentLabel | None:
    """The current label of one sentence from all its annotation versions (any order).

    Returns ``None`` when there are no versions. Versions are ordered by ``id`` (insertion
    order), which is also time order.
    """
    ordered = sorted(versions, key=lambda a: a.id)
    if not ordered:
        return None
    human = [a for a in ordered if a.origin != "import"]
    pool = human or ordered
    latest_by_author: dict[str, AnnotationLike] = {}
    for ann in pool:
        latest_by_author[ann.author] = ann
    voters = sorted(latest_by_author.values(), key=lambda a: a.id)
    counts = Counter(tuple(a.tags) for a in voters)
    best = max(counts.values())
    # among the sequences with the most votes, the one voted for most recently wins
    winner = next(a for a in reversed(voters) if counts[tuple(a.tags)] == best)
    return CurrentLabel(tags=list(winner.tags), annotation_id=winner.id, n_voters=len(voters),
                        agreement=best / len(voters))
