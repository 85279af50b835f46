"""Tests of the issue-19 stage-1/stage-2 variants' pure functions (concner.method.losses):
label contrast on logits (variant a), entity-level translation contrast (b) and the
multi-teacher soft labels of distillation (c)."""

from __future__ import annotations

import math

import pytest
import torch
from test_losses import _dot, _normalise, _softmax

from concner.method.losses import (
    average_teachers,
    distillation,
    entity_translation_contrastive,
    label_contrastive,
    mean_pool_entities,
)

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


# ---------------------------------------------------------------- (b) entity-level TCL
def _nt_xent(src, tgt, t):
    """Symmetric NT-Xent over [src; tgt] written out: positive of i is its pair."""
    z = [_normalise(v) for v in src + tgt]
    k = len(src)
    total = 0.0
    for i in range(2 * k):
        pos = (i + k) % (2 * k)
        denom = sum(math.exp(_dot(z[i], z[a]) / t) for a in range(2 * k) if a != i)
        total += -math.log(math.exp(_dot(z[i], z[pos]) / t) / denom)
    return total / (2 * k)


def test_mean_pool_entities_shapes_and_values():
    reps = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # [R=2, T=3, H=2]
    index = torch.tensor([[0, 0, -1], [-1, 1, -1]])
    pooled, counts = mean_pool_entities(reps, index, 3)
    assert pooled.shape == (3, 2) and counts.tolist() == [2, 1, 0]
    assert pooled[0].tolist() == [1.0, 2.0]  # mean of [0, 1] and [2, 3]
    assert pooled[1].tolist() == [8.0, 9.0] and pooled[2].tolist() == [0.0, 0.0]


def test_entity_translation_contrastive_matches_hand_computation():
    """Two sentences (rows 0, 1) and their translations (rows 2, 3); two aligned entity
    pairs, entity 0 pooled over two tokens; padding-like tokens (-1) are ignored."""
    reps = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]],
                         [[1.0, 2.0], [7.0, -7.0], [0.0, 0.0]],
                         [[2.0, 1.0], [3.0, 3.0], [0.0, 0.0]],
                         [[-1.0, 4.0], [0.0, 0.0], [9.0, 1.0]]], requires_grad=True)
    index = torch.tensor([[0, 0, -1], [2, -1, -1], [1, -1, -1], [3, -1, -1]])
    src, tgt = torch.tensor([0, 2]), torch.tensor([1, 3])
    expected = _nt_xent([[0.5, 0.5], [1.0, 2.0]], [[2.0, 1.0], [-1.0, 4.0]], 0.5)
    loss = entity_translation_contrastive(reps, index, src, tgt, temperature=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert reps.grad[0, :2].abs().sum() > 0 and reps.grad[3, 0].abs().sum() > 0
    ignored = index < 0
    assert torch.equal(reps.grad[ignored], torch.zeros_like(reps.grad[ignored]))


def test_entity_translation_contrastive_degenerate_batches_are_zero():
    reps = torch.randn(2, 4, 3, requires_grad=True)
    index = torch.tensor([[0, 1, -1, -1], [-1, -1, -1, -1]])
    empty = torch.tensor([], dtype=torch.long)
    for src, tgt in ((empty, empty),  # no entity pair at all
                     (torch.tensor([0]), torch.tensor([2]))):  # entity 2 has no token
        loss = entity_translation_contrastive(reps, index, src, tgt)
        assert loss.item() == 0.0 and torch.isfinite(loss)
        loss.backward()
        assert torch.equal(reps.grad, torch.zeros_like(reps))
    # a single pair has no negative: 0, finite
    one = entity_translation_contrastive(reps, index, torch.tensor([0]), torch.tensor([1]))
    assert one.item() == pytest.approx(0.0, abs=1e-6) and torch.isfinite(one)
    with pytest.raises(ValueError, match="must both be"):
        entity_translation_contrastive(reps, index, torch.tensor([0]), torch.tensor([1, 0]))


def test_align_entities_by_type_and_order():
    from concner.method.batches import align_entities

    src = ["B-PER", "I-PER", "O", "B-ORG", "O", "B-LOC", "B-LOC"]
    # the engine put the locations first, kept their order, and the ORG got a word longer
    tgt = ["B-LOC", "B-LOC", "O", "B-ORG", "I-ORG", "O", "B-PER", "I-PER"]
    assert align_entities(src, tgt) == [((0, 2), (6, 8)), ((3, 4), (3, 5)),
                                        ((5, 6), (0, 1)), ((6, 7), (1, 2))]
    assert align_entities(src, tgt[:-3] + ["O", "O", "O"]) is None  # the PER was lost
    assert align_entities(["O", "B-PER"], ["B-LOC", "O"]) is None  # a type changed
    assert align_entities(["O"], ["O", "O"]) == []
    assert align_entities(src, None) is None  # an untagged translation


# ---------------------------------------------------------------- (c) several teachers
def test_average_teachers_is_the_mean_distribution_at_the_temperature():
    a = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 3.0, 0.0], [1.0, -2.0, 5.0]])
    t = 2.0
    merged = average_teachers([a, b], temperature=t)
    assert merged.shape == (2, 3) and merged.dtype == torch.float32
    for row in range(2):
        expected = [(x + y) / 2 for x, y in zip(_softmax(a[row].tolist(), t),
                                                  _softmax(b[row].tolist(), t))]
        got = torch.softmax(merged[row] / t, dim=-1).tolist()
        assert got == pytest.approx(expected, rel=1e-6)
    # one teacher: its own distribution; extreme logits stay finite
    assert torch.allclose(torch.softmax(average_teachers([a], temperature=t) / t, -1),
                          torch.softmax(a / t, -1), atol=1e-7)
    extreme = average_teachers([torch.tensor([[1e4, -1e4]]), torch.tensor([[-1e4, 1e4]])])
    assert torch.isfinite(extreme).all()
    assert torch.softmax(extreme, -1).tolist()[0] == pytest.approx([0.5, 0.5])


def test_distilling_from_averaged_teachers_matches_hand_kl_and_trains_the_student_only():
    a = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]], requires_grad=True)
    b = torch.tensor([[0.0, 2.0], [1.0, 1.0], [-5.0, 5.0]])
    student = torch.tensor([[0.5, 0.5], [0.0, 2.0], [9.0, -9.0]], requires_grad=True)
    mask = torch.tensor([True, True, False])  # the third token is ignored
    loss = distillation(student, average_teachers([a, b]), mask=mask)
    expected = 0.0
    for row in range(2):
        p = [(x + y) / 2 for x, y in zip(_softmax(a[row].tolist(), 1), _softmax(b[row].tolist(), 1))]
        q = _softmax(student[row].tolist(), 1)
        expected += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert student.grad[:2].abs().sum() > 0 and torch.equal(student.grad[2], torch.zeros(2))
    assert a.grad is None  # the teachers are detached


def test_average_teachers_degenerate_inputs():
    none = average_teachers([torch.zeros(0, 3), torch.zeros(0, 3)])
    assert none.shape == (0, 3)
    assert distillation(torch.zeros(0, 3, requires_grad=True), none).item() == 0.0
    with pytest.raises(ValueError, match="at least one"):
        average_teachers([])
    with pytest.raises(ValueError, match="same"):
        average_teachers([torch.zeros(2, 3), torch.zeros(2, 4)])
