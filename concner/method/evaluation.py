"""Entity-level evaluation with seqeval (``mode="strict"``, ``scheme=IOB2``).

An entity counts as correct only when its type and both boundaries match. Figures are
micro-averaged over entities: overall, per entity label, and per language (the
``Sentence.lang`` of the gold sentences). Precision, recall and F1 are fractions in
[0, 1]; ``support`` is the number of gold entities.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from concner.errors import DataFormatError, LabelSchemaError
from concner.labels import iob2_errors
from concner.sentence import Sentence

MICRO = "micro avg"


def _score(gold: list[list[str]], predicted: list[list[str]]) -> tuple[dict, dict[str, dict]]:
    """(micro figures, per-label figures) for one group of sentences."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval/numpy warn on groups without entities
        report = classification_report(gold, predicted, mode="strict", scheme=IOB2,
                                       output_dict=True, zero_division=0)
    labels = {k: _figures(v) for k, v in report.items() if not k.endswith(" avg")}
    return _figures(report[MICRO]), dict(sorted(labels.items()))


def _figures(row: dict) -> dict:
    return {
        "precision": float(row["precision"]),
        "recall": float(row["recall"]),
        "f1": float(row["f1-score"]),
        "support": int(row["support"]),
    }


def _check(gold: Sequence[Sentence], predicted_tags: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted_tags):
        raise DataFormatError(
            f"{len(predicted_tags)} predictions for {len(gold)} gold sentences; "
            "predict every gold sentence once, in order"
        )
    for sentence, tags in zip(gold, predicted_tags):
        if sentence.tags is None:
            raise DataFormatError(
                f"sentence {sentence.id} ({sentence.lang}) has no gold tags; evaluation needs "
                "labelled data"
            )
        if len(tags) != len(sentence.tags):
            raise LabelSchemaError(
                f"sentence {sentence.id}: {len(tags)} predicted tags for {len(sentence.tags)} words"
            )
        problems = iob2_errors(sentence.tags)
        if problems:
            i, what = problems[0]
            raise LabelSchemaError(
                f"gold sentence {sentence.id}: invalid IOB2 at token {i + 1}: {what}; "
                "repair the data (e.g. read it with --repair-iob)"
            )


def evaluate(gold: Sequence[Sentence], predicted_tags: Sequence[Sequence[str]]) -> dict:
    """Strict IOB2 entity scores of ``predicted_tags[i]`` against ``gold[i].tags``.

    Returns ``{"precision", "recall", "f1", "support", "n_sentences",
    "per_label": {label: {"precision", "recall", "f1", "support"}},
    "per_lang": {lang: {"precision", "recall", "f1", "support", "n_sentences"}}}``.
    Raises :class:`DataFormatError` / :class:`LabelSchemaError` on unlabelled gold
    sentences, length mismatches or invalid gold IOB2.
    """
    _check(gold, predicted_tags)
    gold_tags = [list(s.tags) for s in gold]
    pred_tags = [list(t) for t in predicted_tags]
    overall, per_label = _score(gold_tags, pred_tags)
    per_lang: dict[str, dict] = {}
    for lang in sorted({s.lang for s in gold}):
        idx = [i for i, s in enumerate(gold) if s.lang == lang]
        figures, _ = _score([gold_tags[i] for i in idx], [pred_tags[i] for i in idx])
        per_lang[lang] = {**figures, "n_sentences": len(idx)}
    return {**overall, "n_sentences": len(gold), "per_label": per_label, "per_lang": per_lang}


def format_table(report: dict) -> str:
    """A fixed-width text table (percentages) of an :func:`evaluate` report."""
    rows = [("overall", report)]
    rows += [(f"label {name}", fig) for name, fig in report.get("per_label", {}).items()]
    rows += [(f"lang {name}", fig) for name, fig in report.get("per_lang", {}).items()]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'scope':<{width}}  {'precision':>9}  {'recall':>7}  {'f1':>7}  {'support':>7}"]
    for name, fig in rows:
        lines.append(
            f"{name:<{width}}  {100 * fig['precision']:>9.2f}  {100 * fig['recall']:>7.2f}  "
            f"{100 * fig['f1']:>7.2f}  {fig['support']:>7d}"
        )
    return "\n".join(lines)
