"""Rows of the Review page: the active model's predictions on target sentences, filtered
and sorted, and prediction-vs-correction pairs once corrections come back."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from concner.labels import Span
from concner.sentence import Sentence
from concner.store.model_versions import ask_order_key

#: which pool the Review page shows: store role -> label
SIDES = {
    "target": "target: predictions to correct",
    "source": "source: sentences to label",
}

SORTS = {
    "strategy": "active-learning order (most informative first)",
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
    al_score: float | None = None  # active-learning score (higher = ask first), if scored
    al_strategy: str | None = None  # the strategy that gave ``al_score``
    al_rank: int | None = None  # position in that strategy's order to ask (1 = first)
    authors: list[str] = field(default_factory=list)  # who made the current labels

    @property
    def labels(self) -> set[str]:
        return {s.label for s in self.spans}


def spans_from_dicts(items: Sequence[dict]) -> list[Span]:
    return [Span(int(d["start"]), int(d["end"]), str(d["label"]),
                 None if d.get("score") is None else float(d["score"])) for d in items]


def review_rows(sentences: Sequence[Sentence],
                predictions: Sequence[tuple[int, Sequence]],
                authors: Mapping[int, Sequence[str]] | None = None) -> list[ReviewRow]:
    """Join stored predictions with the sentences of one role (``meta["db_id"]``).

    ``predictions`` is ``[(model version number, PredictionRow list), ...]`` newest first;
    each sentence takes the newest version that predicted it (a corrected sentence keeps
    the prediction its annotator saw, since pool prediction skips labelled sentences).
    Sentences no version predicted are left out (predict the pool to include them).
    ``authors``: sentence id -> who made its current labels (:meth:`Store.label_authors`).
    """
    authors = authors or {}
    by_id = {s.meta.get("db_id"): s for s in sentences}
    taken: dict[int, ReviewRow] = {}
    for version, rows in predictions:
        for p in rows:
            s = by_id.get(p.sentence_id)
            if s is None or p.sentence_id in taken:
                continue
            corrected = list(s.tags) if s.tags is not None else None
            taken[p.sentence_id] = ReviewRow(s, list(p.tags), spans_from_dicts(p.spans),
                                             float(p.uncertainty), corrected, version,
                                             p.al_score, p.al_strategy, p.al_rank,
                                             list(authors.get(p.sentence_id, ())))
    return list(taken.values())


def ranking_strategy(rows: Sequence[ReviewRow], version: int) -> str | None:
    """The strategy that scored model ``version``'s predictions, or None (not scored)."""
    names = {r.al_strategy for r in rows if r.model_version == version and r.al_score is not None}
    return min(names) if names else None


def sort_choices(strategy: str | None) -> dict[str, str]:
    """The Review page's sort options: the active-learning order (named after
    ``strategy``) first when the active model's predictions were scored, else uncertainty
    first and no active-learning order."""
    if strategy is None:
        return {k: v for k, v in SORTS.items() if k != "strategy"}
    return {"strategy": f"active-learning order: {strategy} (most informative first)",
            **{k: v for k, v in SORTS.items() if k != "strategy"}}


#: the Review page's one-sentence statement of the push policy (README: the same)
PUSH_POLICY = ("Each sync keeps the next {k} sentences in ask order in each language's "
               "Argilla dataset and tops it up as they get answered; **Send** adds the next "
               "sentences of this list that are not in Argilla yet, on top.")

#: the Status filter: value -> label
STATUSES = {
    "unlabelled": "unlabelled (in Argilla or not)",
    "not sent": "not sent to Argilla",
    "in Argilla": "in Argilla, not answered yet",
    "corrected": "answered",
    "all": "all",
}


def argilla_mark(row: ReviewRow, in_argilla: Collection[str]) -> str:
    """Where a sentence stands: ``answered by <annotators>`` (it has labels),
    ``in Argilla`` (pushed, nobody answered yet; ``in_argilla`` from the sync's memo) or
    ``not sent``."""
    if row.corrected is not None:
        return f"answered by {', '.join(row.authors) or 'unknown'}"
    return "in Argilla" if row.sentence.id in in_argilla else "not sent"


def filter_rows(rows: Sequence[ReviewRow], *, langs: Sequence[str] | None = None,
                labels: Sequence[str] | None = None, status: str = "all",
                in_argilla: Collection[str] = ()) -> list[ReviewRow]:
    """``langs``: keep these languages; ``labels``: keep sentences with a predicted entity
    of one of these labels; ``status``: one of :data:`STATUSES` (``not sent`` and ``in
    Argilla`` are unlabelled sentences outside or inside ``in_argilla``)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {list(STATUSES)}")
    out = []
    for r in rows:
        if langs and r.sentence.lang not in langs:
            continue
        if labels and not (r.labels & set(labels)):
            continue
        if status != "all" and (r.corrected is None) == (status == "corrected"):
            continue
        if status in ("not sent", "in Argilla") and \
                (r.sentence.id in in_argilla) != (status == "in Argilla"):
            continue
        out.append(r)
    return out


def batch_to_send(rows: Sequence[ReviewRow], in_argilla: Collection[str],
                  size: int) -> tuple[list[ReviewRow], bool]:
    """The send button's batch: the first ``size`` unanswered ``rows`` (in their order)
    not in Argilla yet, and False; when every unanswered row is there already, the first
    ``size`` of them (sending again brings their suggestions up to date) and True."""
    waiting = [r for r in rows if r.corrected is None]
    new = [r for r in waiting if r.sentence.id not in in_argilla]
    return (new[:size], False) if new else (waiting[:size], True)


def sort_rows(rows: Sequence[ReviewRow], how: str) -> list[ReviewRow]:
    """``strategy``: in the active-learning order (:func:`ask_order_key`: the strategy's
    rank, else its score, else uncertainty), ties by sentence id; or by uncertainty,
    confidence or id."""
    if how == "strategy":
        return sorted(rows, key=lambda r: (ask_order_key(r.al_rank, r.al_score, r.uncertainty),
                                           r.sentence.id))
    if how == "uncertainty":
        return sorted(rows, key=lambda r: (-r.uncertainty, r.sentence.id))
    if how == "confidence":
        return sorted(rows, key=lambda r: (r.uncertainty, r.sentence.id))
    if how == "id":
        return sorted(rows, key=lambda r: r.sentence.id)
    raise ValueError(f"unknown sort {how!r}; one of {list(SORTS)}")


#: sentences per page of the Review page
PAGE_SIZE = 50


def page_count(n: int, size: int = PAGE_SIZE) -> int:
    """Pages needed for ``n`` rows (at least 1, so an empty list has page 1 of 1)."""
    return max(1, math.ceil(n / size))


def page_of(rows: Sequence[ReviewRow], page: int,
            size: int = PAGE_SIZE) -> tuple[list[ReviewRow], str]:
    """Rows of 1-based ``page`` and a caption: ``page 2 of 3 · sentences 51–100 of 120``."""
    pages = page_count(len(rows), size)
    page = min(max(1, page), pages)
    part = list(rows[(page - 1) * size: page * size])
    if not part:
        return part, f"page {page} of {pages} · no sentences"
    first = (page - 1) * size + 1
    return part, (f"page {page} of {pages} · sentences {first}–{first + len(part) - 1} "
                  f"of {len(rows)}")


def meta_text(row: ReviewRow, active_version: int | None, *, strategy_order: bool,
              in_argilla: Collection[str] | None = None) -> str:
    """The line under a sentence: id, language, uncertainty, its place in the
    active-learning order (``strategy_order``), an older model's version, and who
    answered it, or else (given ``in_argilla``) whether it is in Argilla or not sent."""
    meta = f"`{row.sentence.id}` · {row.sentence.lang} · uncertainty {row.uncertainty:.3f}"
    if strategy_order and row.al_score is not None:
        meta += f" · {row.al_strategy} {row.al_score:.3f}" + (
            f" #{row.al_rank}" if row.al_rank else "")
    if row.model_version != active_version:
        meta += f" · predicted by model v{row.model_version}"
    if row.corrected is not None or in_argilla is not None:
        meta += f" · {argilla_mark(row, in_argilla or ())}"
    return meta
