"""ConCNER training: stage 1 (CE + λ_tcl·TCL + λ_lcl·LCL over source + translation pairs)
and stage 2 (knowledge distillation on unlabelled target text).

Every baseline of METHOD.md is this code with flags (:class:`~concner.config.LossConfig`):
``use_translation=false`` trains on the source only; ``lambda_lcl = 0`` / ``lambda_tcl = 0``
switch a contrastive term off (it is then not computed at all); ``kd = true`` adds stage 2.
``lcl_on = "logits"`` contrasts the classifier's per-token logits instead of the projection
head's output (same loss function, same O-anchor cap, at ``temperature_lcl_logits``).
``tcl_level = "entity"`` contrasts aligned entities instead of whole sentences (the pairs
whose alignment cannot be read from the tags are counted in each stage-1 history record's
``tcl_entity_alignment``).
A project that has no translations (or no unlabelled target text) yet still trains: with a
logged warning, stage 1 runs on the source only (or stage 2 is skipped); the history's
loss terms show what ran. (``concner train`` refuses such a config instead.)

Batches (stage 1). With translations, a batch holds ``batch_size`` *units*: a unit is a
(source, translation) pair, or a source sentence that has no translation. The distinct
source sentences of the batch and all its translations go through the model in ONE
forward pass (``[sources; translations]``), which serves CE and LCL (all labelled first
sub-words) and TCL (one pair per distinct source: its translation is the positive, every
other sentence of the batch a negative). An epoch visits every unit once, so a source
with translations into k languages is seen k times per epoch.

Stage 2. The teacher is the stage-1 model (the best epoch), frozen: its per-word label
distributions on the unlabelled target sentences are computed once, in eval mode, before
stage 2 (not once per KD epoch), and the student starts from the same weights. With
``train(..., extra_teachers=[...])`` the soft labels are the mean of the per-word
distributions (at T) of the stage-1 model and of each extra teacher (e.g. a source-only
model beside the ConCNER one; same label schema). The KD
loss (KL at temperature T, or MSE of the softmax outputs) is taken on first sub-words; with
``lambda_src > 0`` a source batch rides in the same forward pass and adds ``λ_src·CE``.

Everything else: AdamW (fused; no weight decay on biases and LayerNorm; the heads at their
own learning rate), warmup + linear decay, gradient clipping, bf16 autocast on CUDA only,
``training.num_threads``, seeds (CPU runs with the same seed and thread count are
repeatable; the caller's RNG state is left untouched), dev evaluation after each epoch
with the best epoch's weights kept in memory and restored at the end, and a progress
callback: raising :class:`~concner.errors.JobCancelled` from it stops training (the
exception propagates to the caller; nothing is written but the checkpoint below).

Resuming. With ``train(..., resume_dir=DIR)`` (and ``training.checkpoint_every_epoch``), the
end of every epoch of both stages writes a checkpoint into DIR (:mod:`concner.method.checkpoint`:
weights, optimizer, LR schedule, RNG states, stage/epoch/step, the data order's position,
the best epoch so far and its weights, the stage-1 teacher during stage 2), and a run that
finds a valid checkpoint of the same config, data and starting model there continues with
the next epoch: on a CPU it ends with the same weights and history as a run that was never
interrupted. The caller deletes DIR when it no longer wants to resume
(:func:`concner.method.checkpoint.clear`).

The code: :mod:`concner.method.training_types` (the data, progress and result types),
:mod:`concner.method.training_run` (one run: the stages and the epoch loop),
:mod:`concner.method.step_losses` (each stage's per-batch loss).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence

import torch

from concner.config import Config
from concner.errors import DataFormatError
from concner.method.batches import pair_translations
from concner.method.inference import resolve_device
from concner.method.model import NerBundle
from concner.method.training_run import TrainingRun
from concner.method.training_types import (
    ProgressCallback,
    ProgressEvent,
    TrainData,
    TrainResult,
    chosen_epochs,
)

__all__ = [
    "ProgressCallback",
    "ProgressEvent",
    "TrainData",
    "TrainResult",
    "chosen_epochs",
    "pair_translations",
    "planned_steps",
    "train",
]


def train(config: Config, data: TrainData, *, init: NerBundle | None = None,
          callback: ProgressCallback | None = None, keep_teacher: bool = False,
          resume_dir: str | os.PathLike | None = None,
          notify: Callable[[str], None] | None = None,
          extra_teachers: Sequence[NerBundle] = ()) -> TrainResult:
    """Run stage 1 (``training.epochs`` epochs) and, when ``loss.kd``, stage 2
    (``training.kd_epochs`` epochs). ``init=None`` builds a fresh model from
    ``model.encoder``; ``init`` given continues from a copy of it (warm start; the
    caller's bundle is not modified). ``keep_teacher``: also return a copy of the stage-1
    model as ``TrainResult.teacher`` when stage 2 runs (the teacher/student strategy).
    ``resume_dir``: checkpoint after every epoch into this folder and resume from the
    checkpoint found there (see the module doc); a resumed run also restores the python
    and numpy RNG states of the interrupted one. ``notify(line)`` hears what happened to
    a checkpoint found there (``"resumed from stage 1 epoch 2 of 3"``, or why it was not
    resumed). ``extra_teachers``: models whose per-word distributions stage 2 averages
    with the stage-1 model's (same label schema; used in eval mode, not modified)."""
    started = time.perf_counter()
    tc = config.training
    device = resolve_device(tc.device)
    previous_threads = torch.get_num_threads()
    if tc.num_threads > 0:
        torch.set_num_threads(tc.num_threads)
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(tc.seed)
            runner = TrainingRun(config, data, init, callback, device)
            runner.keep_teacher = keep_teacher
            runner.set_extra_teachers(extra_teachers)
            if resume_dir is not None and tc.checkpoint_every_epoch:
                runner.use_checkpoints(resume_dir, notify)
            runner.run()
    finally:
        torch.set_num_threads(previous_threads)
    runner.bundle.model.eval()
    resumed = runner.resumed.describe() if runner.resumed is not None else None
    return TrainResult(runner.bundle, runner.history, runner.best_reports,
                       time.perf_counter() - started, runner.n_truncated, runner.teacher,
                       resumed)


def planned_steps(config: Config, data: TrainData) -> dict[str, int]:
    """Optimiser steps :func:`train` will take per stage (``stage1``, ``kd``) on ``data``,
    counted from the data sizes before anything is encoded (the progress line's plan)."""
    tc, lc = config.training, config.loss
    steps: dict[str, int] = {}
    if tc.epochs > 0 and data.source:
        units = len(data.source)
        if lc.use_translation and data.translations:
            try:
                pairs = pair_translations(data.source, data.translations, data.pairs)
            except DataFormatError:  # train() reports it; the plan just counts sources
                pairs = []
            units = len(pairs) + len(data.source) - len({i for i, _ in pairs})
        steps["stage1"] = tc.epochs * math.ceil(units / tc.batch_size)
    if lc.kd and tc.kd_epochs > 0 and data.unlabelled_target:
        n = len(data.unlabelled_target)
        n = min(n, tc.kd_max_sentences) if tc.kd_max_sentences else n
        steps["kd"] = tc.kd_epochs * math.ceil(n / tc.batch_size)
    return steps
