"""Rows of the Review page: the active model's predictions on target sentences, filtered
and sorted, and prediction-vs-correction pairs once corrections come back. The rows and
their stored ask order come from :mod:`concner.active.ask_order`."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from concner.active.ask_order import ReviewRow, in_ask_order

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
    """``strategy``: in the stored ask order (:func:`~concner.active.ask_order.in_ask_order`);
    or by uncertainty, confidence or id, ties by sentence id."""
    if how == "strategy":
        return in_ask_order(rows)
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
