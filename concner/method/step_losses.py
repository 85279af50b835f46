"""The loss of one training step of each stage, from the model's forward pass on a batch
(:mod:`concner.method.batches` builds the batches, :mod:`concner.method.losses` holds the
loss functions). Each returns ``(total, parts)``: the scalar to back-propagate and its named
terms (``ce``, ``lcl``, ``tcl``, ``kd``), each a scalar tensor."""

from __future__ import annotations

import torch

from concner.config import LossConfig
from concner.method.losses import (
    cross_entropy,
    distillation,
    entity_translation_contrastive,
    label_contrastive,
    translation_contrastive,
)
from concner.method.model import NerModel

__all__ = ["StepLoss", "distillation_step_loss", "stage1_step_loss"]

#: ``(total, {"ce": ..., ...})``: the loss to back-propagate and its terms (scalar tensors)
StepLoss = tuple[torch.Tensor, dict[str, torch.Tensor]]


def stage1_step_loss(model: NerModel, batch: dict[str, torch.Tensor], lc: LossConfig, *,
                     o_label_id: int, generator: torch.Generator) -> StepLoss:
    """Stage 1 on a :class:`~concner.method.batches.Stage1Batches` batch (``input_ids``,
    ``attention_mask``, ``labels`` ``[B, L]``; the TCL pair indices): CE over the labelled
    first sub-words, plus ``λ_lcl·LCL`` (over the projection head's output or the logits,
    ``lc.lcl_on``; ``o_label_id``: the O tag, whose anchors are capped; ``generator`` draws
    that sample), plus ``λ_tcl·TCL`` (sentence- or entity-level) when the batch has pairs."""
    out = model(batch["input_ids"], batch["attention_mask"])
    labels = batch["labels"]
    ce = cross_entropy(out.logits, labels)
    total, parts = ce, {"ce": ce}
    if lc.lambda_lcl > 0:
        keep = labels != -100
        if lc.lcl_on == "logits":
            reps, temperature = out.logits[keep], lc.temperature_lcl_logits
        else:
            reps, temperature = model.project(out.token_repr[keep]), lc.temperature_lcl
        lcl = label_contrastive(reps, labels[keep], temperature=temperature,
                                o_label_id=o_label_id,
                                o_anchor_ratio=lc.lcl_o_anchor_ratio,
                                generator=generator)
        total, parts["lcl"] = total + lc.lambda_lcl * lcl, lcl
    if lc.lambda_tcl > 0 and lc.use_translation and batch["tcl_src"].numel() > 0:
        if lc.tcl_level == "entity":
            tcl = entity_translation_contrastive(
                out.token_repr, batch["entity_index"], batch["tcl_entity_src"],
                batch["tcl_entity_tgt"], temperature=lc.temperature_tcl)
        else:
            sent = out.sentence_repr
            tcl = translation_contrastive(sent[batch["tcl_src"]], sent[batch["tcl_tgt"]],
                                          temperature=lc.temperature_tcl)
        total, parts["tcl"] = total + lc.lambda_tcl * tcl, tcl
    return total, parts


def distillation_step_loss(model: NerModel, batch: dict[str, torch.Tensor],
                           lc: LossConfig) -> StepLoss:
    """Stage 2 on a :class:`~concner.method.batches.DistillationBatches` batch: its first
    ``n_target`` rows are target sentences, distilled towards ``teacher`` (``[n_first, C]``
    logits over their first sub-words); rows after them are source sentences, adding
    ``λ_src·CE``."""
    out = model(batch["input_ids"], batch["attention_mask"])
    n = batch["n_target"]
    first = batch["word_ids"][:n] >= 0
    kd = distillation(out.logits[:n][first], batch["teacher"],
                      temperature=lc.kd_temperature, kind=lc.kd_loss)
    total, parts = kd, {"kd": kd}
    if out.logits.shape[0] > n:
        ce = cross_entropy(out.logits[n:], batch["labels"][n:])
        total, parts["ce"] = total + lc.lambda_src * ce, ce
    return total, parts
