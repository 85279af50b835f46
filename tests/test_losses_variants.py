"""Tests of the issue-19 stage-1/stage-2 variants' pure functions (concner.losses):
label contrast on logits (variant a), entity-level translation contrast (b) and the
multi-teacher soft labels of distillation (c)."""

from __future__ import annotations

import math

import pytest
import torch
from test_losses import _dot, _normalise

from concner.losses import label_contrastive

torch.set_num_threads(1)


# ---------------------------------------------------------------- (a) LCL on logits
def test_label_contrastive_on_logits_at_0_9_matches_hand_computation():
    """Three tokens' logits over 3 classes (O, B-PER, I-PER), one ignored; the two PER
    tokens are each other's positive, the O token has none (not an anchor) and no O cap
    applies (entity tokens outnumber O)."""
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 1.0], [9.0, 9.0, 9.0]],
                          requires_grad=True)
    labels = torch.tensor([0, 1, 1, -100])
    z = [_normalise(v) for v in logits.tolist()[:3]]
    t = 0.9

    def anchor(i, p):
        denom = sum(math.exp(_dot(z[i], z[a]) / t) for a in range(3) if a != i)
        return -math.log(math.exp(_dot(z[i], z[p]) / t) / denom)

    expected = (anchor(1, 2) + anchor(2, 1)) / 2
    loss = label_contrastive(logits, labels, temperature=t, o_label_id=0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad[:3].abs().sum() > 0
    assert torch.equal(logits.grad[3], torch.zeros(3))  # the ignored token gets nothing
