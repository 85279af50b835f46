"""Tests of concner.method.losses: values against independent plain-math computations, masks,
gradients, degenerate inputs and low precision."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from concner.method.losses import (
    cross_entropy,
    distillation,
    label_contrastive,
    translation_contrastive,
)

torch.set_num_threads(1)


# ---------------------------------------------------------------- plain-math references
def _normalise(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _softmax(row, t=1.0):
    m = max(row)
    e = [math.exp((x - m) / t) for x in row]
    s = sum(e)
    return [x / s for x in e]


def _supcon_anchor(vectors, labels, i, t):
    """Khosla et al. L_out for anchor i, written as the paper's formula."""
    z = [_normalise(v) for v in vectors]
    others = [a for a in range(len(z)) if a != i]
    denom = sum(math.exp(_dot(z[i], z[a]) / t) for a in others)
    pos = [p for p in others if labels[p] == labels[i]]
    return -sum(math.log(math.exp(_dot(z[i], z[p]) / t) / denom) for p in pos) / len(pos)


# ---------------------------------------------------------------- cross-entropy
def test_cross_entropy_matches_hand_computation():
    logits = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 5.0]],
                           [[3.0, 1.0], [0.5, 0.5], [0.0, 0.0]]])
    labels = torch.tensor([[0, -100, 1], [0, -100, -100]])
    expected = (
        math.log(2.0)  # uniform over two classes
        + (math.log(math.exp(2) + math.exp(5)) - 5)
        + (math.log(math.exp(3) + math.exp(1)) - 3)
    ) / 3
    assert cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_gradient_only_on_labelled_positions():
    logits = torch.randn(2, 4, 3, requires_grad=True)
    labels = torch.tensor([[1, -100, 2, -100], [-100, -100, -100, -100]])
    cross_entropy(logits, labels).backward()
    masked = labels == -100
    assert torch.all(logits.grad[masked] == 0)
    assert torch.all(logits.grad[~masked].abs().sum(-1) > 0)


def test_cross_entropy_fully_masked_is_zero_and_backpropagates():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    loss = cross_entropy(logits, torch.full((2, 3), -100))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must be"):
        cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))


# ---------------------------------------------------------------- label contrastive
VECS = [[1.0, 0.0], [2.0, 1.0], [0.0, 1.0], [-1.0, 0.5], [0.3, -1.0]]


def test_label_contrastive_matches_khosla_formula():
    labels = [1, 1, 2, 2, 2]
    t = 0.5
    expected = sum(_supcon_anchor(VECS, labels, i, t) for i in range(5)) / 5
    got = label_contrastive(torch.tensor(VECS), torch.tensor(labels), temperature=t,
                            o_label_id=None)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_label_contrastive_skips_anchors_without_positive_and_ignored_tokens():
    # token 0 is the only label 3 -> not an anchor, but still a negative for the others;
    # token 4 is ignored (-100): neither anchor nor negative.
    labels = [3, 1, 1, 2, -100]
    t = 0.2
    kept = VECS[:4]
    kept_labels = labels[:4]
    expected = sum(_supcon_anchor(kept, kept_labels, i, t) for i in (1, 2)) / 2
    # token 3 (label 2) has no positive once token 4 is ignored
    got = label_contrastive(torch.tensor(VECS), torch.tensor(labels), temperature=t,
                            o_label_id=None)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_label_contrastive_caps_o_anchors():
    # labels: O O O O PER PER  -> 2 entity tokens; with ratio 1, 2 of the 4 O tokens anchor
    vecs = VECS + [[0.7, 0.7]]
    labels = [0, 0, 0, 0, 1, 1]
    vecs = vecs[:6]
    t = 0.3
    per_anchor = [_supcon_anchor(vecs, labels, i, t) for i in range(6)]
    no_o = label_contrastive(torch.tensor(vecs), torch.tensor(labels), temperature=t,
                             o_anchor_ratio=0.0).item()
    assert no_o == pytest.approx((per_anchor[4] + per_anchor[5]) / 2, rel=1e-5)
    uncapped = label_contrastive(torch.tensor(vecs), torch.tensor(labels), temperature=t,
                                 o_anchor_ratio=float("inf")).item()
    assert uncapped == pytest.approx(sum(per_anchor) / 6, rel=1e-5)
    possible = [
        (per_anchor[a] + per_anchor[b] + per_anchor[4] + per_anchor[5]) / 4
        for a, b in itertools.combinations(range(4), 2)
    ]
    values = []
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        v = label_contrastive(torch.tensor(vecs), torch.tensor(labels), temperature=t,
                              o_anchor_ratio=1.0, generator=g).item()
        assert min(abs(v - p) for p in possible) < 1e-5
        g2 = torch.Generator().manual_seed(seed)
        again = label_contrastive(torch.tensor(vecs), torch.tensor(labels), temperature=t,
                                  o_anchor_ratio=1.0, generator=g2).item()
        assert again == v  # deterministic given the generator
        values.append(v)
    assert len({round(v, 6) for v in values}) > 1  # the choice really depends on the seed


def test_label_contrastive_o_cap_edge_cases():
    reps = torch.tensor(VECS[:4])
    all_o = torch.tensor([0, 0, 0, 0])
    # no entity token: with a finite ratio no O anchor is allowed, with inf all are
    assert label_contrastive(reps, all_o, temperature=0.5).item() == 0.0
    expected = sum(_supcon_anchor(VECS[:4], [0, 0, 0, 0], i, 0.5) for i in range(4)) / 4
    got = label_contrastive(reps, all_o, temperature=0.5, o_anchor_ratio=float("inf"))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_label_contrastive_without_anchor_is_zero_with_graph():
    reps = torch.randn(3, 4, requires_grad=True)
    loss = label_contrastive(reps, torch.tensor([1, 2, 3]))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.all(reps.grad == 0)
    reps.grad = None
    loss = label_contrastive(reps, torch.full((3,), -100))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(reps.grad == 0)


def test_label_contrastive_gradient_zero_on_ignored_tokens():
    reps = torch.randn(6, 5, requires_grad=True)
    labels = torch.tensor([1, 1, -100, 2, 2, -100])
    label_contrastive(reps, labels, o_label_id=None).backward()
    assert torch.all(reps.grad[labels == -100] == 0)
    assert torch.all(reps.grad[labels != -100].abs().sum(-1) > 0)


# ---------------------------------------------------------------- translation contrastive
def _nt_xent(src, tgt, t):
    z = [_normalise(v) for v in src + tgt]
    b = len(src)
    total = 0.0
    for i in range(2 * b):
        pos = i + b if i < b else i - b
        denom = sum(math.exp(_dot(z[i], z[a]) / t) for a in range(2 * b) if a != i)
        total += -math.log(math.exp(_dot(z[i], z[pos]) / t) / denom)
    return total / (2 * b)


def test_translation_contrastive_matches_hand_computation():
    src = [[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]]
    tgt = [[0.8, 0.3, 0.4], [0.2, 1.0, -0.5]]
    got = translation_contrastive(torch.tensor(src), torch.tensor(tgt), temperature=0.5)
    assert got.item() == pytest.approx(_nt_xent(src, tgt, 0.5), rel=1e-5)


def test_translation_contrastive_aligned_near_zero_shuffled_large():
    src = torch.eye(6)[:4] * 3.0  # 4 distinct orthogonal sentences
    aligned = translation_contrastive(src, src.clone(), temperature=0.05)
    assert aligned.item() < 1e-6
    shuffled = translation_contrastive(src, src[[1, 2, 3, 0]], temperature=0.05)
    assert shuffled.item() > 10.0


def test_translation_contrastive_valid_mask():
    src = torch.randn(3, 4, requires_grad=True)
    tgt = torch.randn(3, 4, requires_grad=True)
    valid = torch.tensor([True, False, True])
    loss = translation_contrastive(src, tgt, temperature=0.5, valid=valid)
    expected = _nt_xent(src[[0, 2]].tolist(), tgt[[0, 2]].tolist(), 0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.all(src.grad[1] == 0) and torch.all(tgt.grad[1] == 0)
    assert src.grad[0].abs().sum() > 0 and tgt.grad[2].abs().sum() > 0


def test_translation_contrastive_no_valid_pair_is_zero():
    src = torch.randn(2, 4, requires_grad=True)
    tgt = torch.randn(2, 4, requires_grad=True)
    loss = translation_contrastive(src, tgt, valid=torch.tensor([False, False]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(src.grad == 0)
    single = translation_contrastive(src[:1], tgt[:1])
    assert single.item() == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------- distillation
def test_distillation_kl_matches_hand_computation():
    s = [[1.0, 0.0, -1.0], [0.5, 0.2, 0.1]]
    t = [[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
    temp = 2.0
    expected = 0.0
    for sr, tr in zip(s, t):
        ps, pt = _softmax(sr, temp), _softmax(tr, temp)
        expected += sum(b * math.log(b / a) for a, b in zip(ps, pt))
    expected = expected / 2 * temp ** 2
    got = distillation(torch.tensor(s), torch.tensor(t), temperature=temp, kind="kl")
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_distillation_mse_matches_hand_computation():
    s = [[1.0, 0.0, -1.0], [0.5, 0.2, 0.1]]
    t = [[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
    expected = 0.0
    for sr, tr in zip(s, t):
        ps, pt = _softmax(sr), _softmax(tr)
        expected += sum((a - b) ** 2 for a, b in zip(ps, pt)) / 3
    expected /= 2
    got = distillation(torch.tensor(s), torch.tensor(t), kind="mse")
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["kl", "mse"])
@pytest.mark.parametrize("temp", [1.0, 3.0])
def test_distillation_exactly_zero_when_equal(kind, temp):
    logits = torch.randn(7, 5) * 4
    assert distillation(logits, logits.clone(), temperature=temp, kind=kind).item() == 0.0


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_distillation_mask_and_teacher_gets_no_gradient(kind):
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    mask = torch.tensor([True, False, True, False])
    distillation(student, teacher, kind=kind, mask=mask).backward()
    assert torch.all(student.grad[~mask] == 0)
    assert torch.all(student.grad[mask].abs().sum(-1) > 0)
    assert teacher.grad is None
    student.grad = None
    loss = distillation(student, teacher, kind=kind, mask=torch.zeros(4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(student.grad == 0)


def test_distillation_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kl"):
        distillation(torch.zeros(2, 3), torch.zeros(2, 3), kind="js")


# ---------------------------------------------------------------- low precision
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_losses_finite_and_close_in_low_precision(dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g) * 30  # large logits would overflow exp in half
    labels = torch.tensor([[0, 1, -100, 2, 0], [-100, -100, -100, -100, -100]])
    reps = torch.randn(8, 16, generator=g) * 50
    lab = torch.tensor([0, 1, 1, 0, 2, 2, -100, 0])
    src, tgt = torch.randn(3, 16, generator=g) * 50, torch.randn(3, 16, generator=g) * 50
    pairs = [
        (cross_entropy, (logits, labels), {}),
        (label_contrastive, (reps, lab), {"temperature": 0.05, "o_anchor_ratio": float("inf")}),
        (translation_contrastive, (src, tgt), {"temperature": 0.05}),
        (distillation, (logits[0], logits[0].flip(0)), {"kind": "kl"}),
        (distillation, (logits[0], logits[0].flip(0)), {"kind": "mse"}),
    ]
    for fn, args, kw in pairs:
        full = fn(*args, **kw)
        low = fn(*[a.to(dtype) if a.is_floating_point() else a for a in args], **kw)
        assert low.dtype == torch.float32
        assert torch.isfinite(low), fn.__name__
        assert low.item() == pytest.approx(full.item(), rel=0.05, abs=0.05), fn.__name__
