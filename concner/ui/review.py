"""Rows of the Review page: the active model's predictions on target sentences, filtered
and sorted, and prediction-vs-correction pairs once corrections come back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from concner.labels import Span
from concner.sentence import Sentence

SORTS = {
    "uncertainty": "most uncertain first (mean word entropy)",
    "confidence": "most confident first",
    "id": "sentence id",
}


@dataclass
class ReviewRow:
    sentence: Sentence
    tags: list[str]
    spans: list[Span]
    uncertainty: float
    corrected: list[str] | None  # current labels when someone labelled the sentence
    model_version: int | None = None  # the version that made this prediction

    @property
    def labels(self) -> set[str]:
        return {s.label for s in self.spans}


def spans_from_dicts(items: Sequence[dict]) -> list[Span]:
    return [Span(int(d["start"]), int(d["end"]), str(d["label"]),
                 None if d.get("score") is None else float(d["score"])) for d in items]


def review_rows(sentences: Sequence[Sentence],
                predictions: Sequence[tuple[int, Sequence]]) -> list[ReviewRow]:
    """Join stored predictions with the target sentences (``meta["db_id"]``).

    ``predictions`` is ``[(model version number, PredictionRow list), ...]`` newest first;
    each sentence takes the newest version that predicted it (a corrected sentence keeps
    the prediction its annotator saw, since pool prediction skips labelled sentences).
    Sentences no version predicted are left out (predict the pool to include them).
    """
    by_id = {s.meta.get("db_id"): s for s in sentences}
    taken: dict[int, ReviewRow] = {}
    for version, rows in predictions:
        for p in rows:
            s = by_id.get(p.sentence_id)
            if s is None or p.sentence_id in taken:
                continue
            corrected = list(s.tags) if s.tags is not None else None
            taken[p.sentence_id] = ReviewRow(s, list(p.tags), spans_from_dicts(p.spans),
                                             float(p.uncertainty), corrected, version)
    return list(taken.values())


def filter_rows(rows: Sequence[ReviewRow], *, langs: Sequence[str] | None = None,
                labels: Sequence[str] | None = None, status: str = "all") -> list[ReviewRow]:
    """``langs``: keep these languages; ``labels``: keep sentences with a predicted entity
    of one of these labels; ``status``: ``all``, ``unlabelled`` or ``corrected``."""
    out = []
    for r in rows:
        if langs and r.sentence.lang not in langs:
            continue
        if labels and not (r.labels & set(labels)):
            continue
        if status == "unlabelled" and r.corrected is not None:
            continue
        if status == "corrected" and r.corrected is None:
            continue
        out.append(r)
    return out


def sort_rows(rows: Sequence[ReviewRow], how: str) -> list[ReviewRow]:
    if how == "uncertainty":
        return sorted(rows, key=lambda r: (-r.uncertainty, r.sentence.id))
    if how == "confidence":
        return sorted(rows, key=lambda r: (r.uncertainty, r.sentence.id))
    if how == "id":
        return sorted(rows, key=lambda r: r.sentence.id)
    raise ValueError(f"unknown sort {how!r}; one of {list(SORTS)}")
