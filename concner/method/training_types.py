"""What a training run takes and gives back: :class:`TrainData` (the sentences),
:class:`ProgressEvent` (one progress report), :class:`TrainResult` (the model and its history),
and :func:`chosen_epochs` (which epoch of each stage a run kept). See
:mod:`concner.method.training` for the run itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from concner.method.model import NerBundle
from concner.sentence import Sentence

__all__ = ["ProgressCallback", "ProgressEvent", "TrainData", "TrainResult", "chosen_epochs"]


@dataclass
class TrainData:
    """The sentences a run trains and evaluates on.

    Attributes:
        source: labelled source sentences (gold IOB2 tags).
        translations: translated sentences with projected tags (a translation without tags
            still serves TCL). Paired with ``source`` by ``pairs`` when given, else by
            ``meta["source_id"] == source.id`` when every translation carries one, else by
            position (then ``len(translations)`` must equal ``len(source)``).
        pairs: optional ``(source_index, translation_index)`` list; several translations of
            one source (several target languages) are fine.
        unlabelled_target: target-language sentences for stage 2 (KD).
        dev: language -> gold sentences, evaluated after every epoch (only
            ``training.select_langs`` when set; the other languages once, at the end).
    """

    source: list[Sentence]
    translations: list[Sentence] | None = None
    pairs: list[tuple[int, int]] | None = None
    unlabelled_target: list[Sentence] = field(default_factory=list)
    dev: dict[str, list[Sentence]] = field(default_factory=dict)


@dataclass
class ProgressEvent:
    """One progress report. ``stage`` is ``"stage1"``, ``"kd"`` or ``"eval"``; ``step``
    counts optimiser steps within the stage (1-based), ``total_steps`` is the stage's total;
    ``losses`` holds the terms of the step's loss (``ce``, ``lcl``, ``tcl``, ``kd``);
    ``metrics`` (eval events) maps each dev language to its F1 plus ``"score"``;
    ``of_stage`` (eval events) is the stage whose epoch was evaluated (``"stage1"``/``"kd"``)."""

    stage: str
    epoch: int
    step: int
    total_steps: int
    loss: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict | None = None
    of_stage: str | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class TrainResult:
    """``bundle``: the returned (best) model, in eval mode on the training device;
    ``history``: one dict per epoch (stage, epoch, steps, mean losses, dev F1 per
    language, score, seconds, time split into data/forward/backward/optimizer);
    ``dev_metrics``: language -> :func:`concner.method.evaluation.evaluate` report of the
    returned model; ``n_truncated``: training sentences cut at ``model.max_length``;
    ``teacher``: the stage-1 model distillation started from (eval mode), when
    ``train(..., keep_teacher=True)`` and stage 2 ran, else None; ``resumed``: where a
    resumed run picked up (``"stage 1 epoch 2 of 3"``: the last epoch it did not redo), or
    None for a run that started fresh."""

    bundle: NerBundle
    history: list[dict]
    dev_metrics: dict[str, dict]
    seconds: float
    n_truncated: int
    teacher: NerBundle | None = None
    resumed: str | None = None


def chosen_epochs(history: list[dict]) -> dict[str, dict]:
    """``stage -> its history record with the best dev score`` (the epoch
    :func:`~concner.method.training.train` keeps: the first with the highest score), for
    each stage that was evaluated."""
    kept: dict[str, dict] = {}
    for record in history:
        best = kept.get(record["stage"])
        if "score" in record and (best is None or record["score"] > best["score"]):
            kept[record["stage"]] = record
    return kept

