"""The stored ask order and what to ask next.

With each pool prediction of the active model the worker stores, per sentence, the active
learning strategy's score and rank (``PredictionRow.al_score`` / ``al_rank``; 1 = ask a
person first). This module is the one reader of that order: it joins the stored
predictions with their sentences (:func:`review_rows`), sorts them in the order to ask
(:func:`in_ask_order`) and answers "what next?" (:func:`next_to_ask`) for the CLI
(``concner project next``) and the app's Review pages (:mod:`concner.ui.review`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from concner.errors import ConcnerError
from concner.labels import Span
from concner.sentence import Sentence
from concner.store.model_versions import ask_order_key


@dataclass
class ReviewRow:
    """One sentence with the stored prediction it is asked with."""

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


def in_ask_order(rows: Sequence[ReviewRow]) -> list[ReviewRow]:
    """``rows`` in the active-learning order (:func:`ask_order_key`: the strategy's rank,
    else its score, else uncertainty), ties by sentence id."""
    return sorted(rows, key=lambda r: (ask_order_key(r.al_rank, r.al_score, r.uncertainty),
                                       r.sentence.id))


def next_to_ask(store, name: str, side: str = "target", n: int = 20,
                lang: str | None = None) -> list[ReviewRow]:
    """The active model's unlabelled ``side`` sentences (of ``lang`` if given) in the
    stored active-learning order, at most ``n``.

    Raises :class:`ConcnerError` when there is no active model or it has not predicted the
    pool yet (saying what to run)."""
    store.get_project(name)  # an unknown project is a clear error
    mv = store.active_model_version(name)
    if mv is None:
        raise ConcnerError(f"project {name!r} has no active model yet: train one "
                           f"(concner project retrain {name}, with a worker running)")
    predictions = store.predictions(mv.id)
    if not predictions:
        raise ConcnerError(f"the active model v{mv.version} of {name!r} has not predicted the "
                           "pool yet: the worker does it after each promotion (is a worker "
                           "running? concner worker)")
    rows = review_rows(store.sentences(name, role=side), [(mv.version, predictions)])
    unlabelled = [r for r in rows
                  if r.corrected is None and (not lang or r.sentence.lang == lang)]
    return in_ask_order(unlabelled)[:n]
