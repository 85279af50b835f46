"""ConCNER's losses as pure functions of tensors and masks (no model inside).

Every function casts its inputs to float32 before any exponential or normalisation, so
the results are finite and accurate under fp16/bf16 autocast, and returns a float32
scalar. Masked entries (label ``-100``, ``mask == False``) contribute exactly nothing,
neither to the value nor to the gradient; when nothing is left to compute, the result is
an exact zero that is still connected to the inputs' graph (so ``backward()`` works and
gives zero gradients).

- :func:`cross_entropy`: token classification loss, ``-100`` ignored.
- :func:`label_contrastive` (LCL): supervised contrastive loss of Khosla et al. (2020)
  over token representations with the same gold label as positives.
- :func:`translation_contrastive` (TCL): symmetric InfoNCE (NT-Xent) between each source
  sentence and its own translation, in-batch negatives.
- :func:`entity_translation_contrastive` (TCL at entity level): the same InfoNCE between
  each source entity and its projected span in the translation (mean-pooled tokens), the
  other entities of the batch as negatives.
- :func:`distillation` (KD): KL(teacher || student) at temperature T, or MSE between the
  two softmax outputs (Wu et al. 2020).
- :func:`average_teachers` (KD with several teachers): the logits whose distribution at T
  is the mean of the teachers' distributions at T, to distil from as from one teacher.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "average_teachers",
    "cross_entropy",
    "distillation",
    "entity_translation_contrastive",
    "label_contrastive",
    "mean_pool_entities",
    "translation_contrastive",
]


def _zero_like_graph(*tensors: torch.Tensor) -> torch.Tensor:
    """An exact float32 zero attached to the graph of ``tensors`` (zero gradients)."""
    total = None
    for t in tensors:
        term = (t.float() * 0.0).sum()
        total = term if total is None else total + term
    return total


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy over the positions whose label is not ``-100``.

    Args:
        logits: ``[B, T, C]`` (any float dtype).
        labels: ``[B, T]`` long, class ids in ``[0, C)`` or ``-100`` (ignored: padding,
            special tokens, non-first sub-words).

    Returns:
        float32 scalar: the mean over kept positions (each kept token weighs the same,
        whatever sentence it is in); exactly 0 when every position is ignored.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"cross_entropy: logits {tuple(logits.shape)} and labels "
                         f"{tuple(labels.shape)} must be [B,T,C] and [B,T]")
    keep = labels != IGNORE_INDEX
    if not bool(keep.any()):
        return _zero_like_graph(logits)
    flat = logits.float()[keep]  # [K, C]
    return F.cross_entropy(flat, labels[keep], reduction="mean")


def label_contrastive(
    reps: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 0.1,
    o_label_id: int | None = 0,
    o_anchor_ratio: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, "L_out") over token representations.

    Representations are L2-normalised. For an anchor ``i`` with positives
    ``P(i) = {p != i : labels[p] == labels[i]}`` and contrast set ``A(i)`` = every other
    valid token::

        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t) )

    and the loss is the mean of ``l_i`` over the anchors. Anchors without any positive
    are skipped. ``O`` tokens dominate NER batches, so at most
    ``floor(o_anchor_ratio * n_entity_tokens)`` ``O`` tokens act as anchors (chosen
    uniformly at random with ``generator``: deterministic for a seeded generator); all
    ``O`` tokens stay in the contrast set and as positives. No ``base_temperature``
    rescaling (Khosla et al.'s ``t / t_base`` factor) is applied.

    Args:
        reps: ``[N, P]`` token representations (first sub-words of the batch, usually
            after the projection head), any float dtype.
        labels: ``[N]`` long tag ids; ``-100`` marks tokens to ignore entirely.
        temperature: ``t`` above, > 0.
        o_label_id: the id of ``O`` (the capped class); ``None`` disables the cap.
        o_anchor_ratio: cap on ``O`` anchors as a multiple of the entity tokens
            (``inf`` = no cap; 0 = no ``O`` anchors).
        generator: random source for choosing the capped ``O`` anchors.

    Returns:
        float32 scalar; an exact 0 attached to the graph when no anchor has a positive.
    """
    if reps.dim() != 2 or labels.shape != reps.shape[:1]:
        raise ValueError(f"label_contrastive: reps {tuple(reps.shape)} and labels "
                         f"{tuple(labels.shape)} must be [N,P] and [N]")
    if temperature <= 0:
        raise ValueError(f"label_contrastive: temperature must be > 0, got {temperature}")
    valid = labels != IGNORE_INDEX
    idx = valid.nonzero(as_tuple=True)[0]
    if idx.numel() < 2:
        return _zero_like_graph(reps)
    z = F.normalize(reps.float()[idx], dim=-1)  # [M, P]
    lab = labels[idx]  # [M]

    # Anchor selection: every entity token, and a capped random subset of O tokens.
    anchor = torch.ones_like(lab, dtype=torch.bool)
    if o_label_id is not None:
        is_o = lab == o_label_id
        n_o = int(is_o.sum())
        if o_anchor_ratio == float("inf"):
            cap = n_o
        else:
            cap = min(n_o, int(o_anchor_ratio * int((~is_o).sum())))
        if cap < n_o:
            o_pos = is_o.nonzero(as_tuple=True)[0]
            perm = torch.randperm(n_o, generator=generator, device="cpu")
            drop = o_pos[perm[cap:].to(o_pos.device)]
            anchor[drop] = False
    same = lab[:, None] == lab[None, :]  # [M, M]
    eye = torch.eye(lab.numel(), dtype=torch.bool, device=lab.device)
    positive = same & ~eye
    anchor &= positive.any(dim=1)
    if not bool(anchor.any()):
        return _zero_like_graph(reps)

    rows = anchor.nonzero(as_tuple=True)[0]
    sim = (z[rows] @ z.T) / temperature  # [A, M]
    sim = sim.masked_fill(eye[rows], float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)  # -inf on the diagonal
    pos = positive[rows]
    pos_log_prob = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    per_anchor = -pos_log_prob / pos.sum(dim=1)
    return per_anchor.mean()


def translation_contrastive(
    src: torch.Tensor,
    tgt: torch.Tensor,
    *,
    temperature: float = 0.05,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between sentences and their translations (NT-Xent form).

    The ``2B`` representations ``[src; tgt]`` are L2-normalised. For source ``i`` the
    positive is translation ``i``, and for translation ``i`` it is source ``i``; the
    negatives are *all other sentences of the batch*, sources and translations alike
    (METHOD.md: "the other sentences of the batch"), which is SimCLR's NT-Xent. This
    choice also pushes apart different source sentences, not only a source from the
    other translations, and gives ``2B - 2`` negatives per anchor instead of ``B - 1``.
    The loss is the mean over the ``2B`` anchors (both directions)::

        l_i = -log( exp(s(i, pos(i))/t) / sum_{a != i} exp(s(i, a)/t) )

    Args:
        src: ``[B, H]`` source sentence representations, any float dtype.
        tgt: ``[B, H]`` representations of their translations (row ``i`` translates
            ``src[i]``).
        temperature: ``t`` above, > 0.
        valid: optional ``[B]`` bool; a ``False`` pair is left out entirely (neither
            anchor nor negative), e.g. a source whose translation was dropped.

    Returns:
        float32 scalar; an exact 0 attached to the graph when no pair is valid. With a
        single valid pair the loss is 0 (there is no negative).
    """
    if src.dim() != 2 or src.shape != tgt.shape:
        raise ValueError(f"translation_contrastive: src {tuple(src.shape)} and tgt "
                         f"{tuple(tgt.shape)} must both be [B,H]")
    if temperature <= 0:
        raise ValueError(f"translation_contrastive: temperature must be > 0, got {temperature}")
    if valid is not None:
        if valid.shape != src.shape[:1]:
            raise ValueError(f"translation_contrastive: valid {tuple(valid.shape)} must be [B]")
        keep = valid.to(torch.bool).nonzero(as_tuple=True)[0]
        if keep.numel() == 0:
            return _zero_like_graph(src, tgt)
        src, tgt = src[keep], tgt[keep]
    b = src.shape[0]
    if b == 0:
        return _zero_like_graph(src, tgt)
    z = F.normalize(torch.cat([src.float(), tgt.float()], dim=0), dim=-1)  # [2B, H]
    sim = (z @ z.T) / temperature  # [2B, 2B]
    eye = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target, reduction="mean")


def mean_pool_entities(token_repr: torch.Tensor, entity_index: torch.Tensor,
                       n_entities: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the token representations of each entity.

    Args:
        token_repr: ``[R, T, H]`` token representations, any float dtype.
        entity_index: ``[R, T]`` long: the entity (``0 .. n_entities - 1``) a token belongs
            to, ``-1`` for tokens of no entity (ignored).
        n_entities: ``E``, the number of entities.

    Returns:
        ``(pooled [E, H] float32, counts [E] long)``: an entity without any token has a zero
        row and count 0.
    """
    if token_repr.dim() != 3 or entity_index.shape != token_repr.shape[:2]:
        raise ValueError(f"mean_pool_entities: token_repr {tuple(token_repr.shape)} and "
                         f"entity_index {tuple(entity_index.shape)} must be [R,T,H] and [R,T]")
    keep = entity_index >= 0
    ids = entity_index[keep]  # [M]
    if bool((ids >= n_entities).any()):
        raise ValueError(f"mean_pool_entities: entity ids must be < n_entities={n_entities}")
    reps = token_repr.float()[keep]  # [M, H]
    pooled = reps.new_zeros((n_entities, token_repr.shape[-1])).index_add(0, ids, reps)
    counts = torch.bincount(ids, minlength=n_entities)  # [E]
    return pooled / counts.clamp_min(1).unsqueeze(-1).to(pooled.dtype), counts


def entity_translation_contrastive(
    token_repr: torch.Tensor,
    entity_index: torch.Tensor,
    src_entities: torch.Tensor,
    tgt_entities: torch.Tensor,
    *,
    temperature: float = 0.05,
) -> torch.Tensor:
    """TCL between aligned entities: :func:`translation_contrastive` over entity
    representations instead of sentence representations.

    Each entity's representation is the mean of its tokens (:func:`mean_pool_entities`).
    Pair ``k`` aligns source entity ``src_entities[k]`` with its projected span in the
    translation, ``tgt_entities[k]``; the positive of one is the other, and the negatives
    are all the other entities of the pairs (sources and translations alike, NT-Xent). A
    pair one of whose entities has no token (e.g. cut off by truncation) is left out.

    Args:
        token_repr: ``[R, T, H]`` token representations of the batch, any float dtype.
        entity_index: ``[R, T]`` long entity id per token, ``-1`` for none (ignored).
        src_entities: ``[K]`` long entity ids of the source side of each pair.
        tgt_entities: ``[K]`` long entity ids of the translation side.
        temperature: ``t`` > 0.

    Returns:
        float32 scalar; an exact 0 attached to the graph when no pair is left (and 0 with a
        single pair: there is no negative).
    """
    if src_entities.dim() != 1 or src_entities.shape != tgt_entities.shape:
        raise ValueError(f"entity_translation_contrastive: src_entities "
                         f"{tuple(src_entities.shape)} and tgt_entities "
                         f"{tuple(tgt_entities.shape)} must both be [K]")
    if src_entities.numel() == 0:
        return _zero_like_graph(token_repr)
    n = int(torch.cat([src_entities, tgt_entities]).max()) + 1
    n = max(n, int(entity_index.max()) + 1)
    pooled, counts = mean_pool_entities(token_repr, entity_index, n)
    valid = (counts[src_entities] > 0) & (counts[tgt_entities] > 0)
    if not bool(valid.any()):
        return _zero_like_graph(token_repr)
    return translation_contrastive(pooled[src_entities], pooled[tgt_entities],
                                   temperature=temperature, valid=valid)


def distillation(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    kind: str = "kl",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distillation loss between per-token label distributions.

    - ``kind="kl"``: ``T^2 * KL(p_teacher || p_student)`` with both distributions taken
      at temperature ``T`` (Hinton et al.'s scaling keeps gradients comparable across T).
    - ``kind="mse"``: mean squared difference of the two softmax outputs at temperature
      ``T``, averaged over classes (Wu et al. 2020); no ``T^2`` factor.

    The teacher is detached (no gradient flows into it). The result is exactly 0 when
    ``student_logits`` equals ``teacher_logits``.

    Args:
        student_logits: ``[N, C]`` (first sub-words of the batch), any float dtype.
        teacher_logits: ``[N, C]``.
        temperature: ``T`` > 0.
        kind: ``"kl"`` or ``"mse"``.
        mask: optional ``[N]`` bool; ``False`` rows are ignored.

    Returns:
        float32 scalar: the mean over kept rows; an exact 0 attached to the graph when
        no row is kept.
    """
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f"distillation: student {tuple(student_logits.shape)} and teacher "
                         f"{tuple(teacher_logits.shape)} must both be [N,C]")
    if kind not in ("kl", "mse"):
        raise ValueError(f"distillation: kind must be 'kl' or 'mse', got {kind!r}")
    if temperature <= 0:
        raise ValueError(f"distillation: temperature must be > 0, got {temperature}")
    student = student_logits.float()
    teacher = teacher_logits.detach().float()
    if mask is not None:
        if mask.shape != student.shape[:1]:
            raise ValueError(f"distillation: mask {tuple(mask.shape)} must be [N]")
        keep = mask.to(torch.bool).nonzero(as_tuple=True)[0]
        if keep.numel() == 0:
            return _zero_like_graph(student_logits)
        student, teacher = student[keep], teacher[keep]
    if student.shape[0] == 0:
        return _zero_like_graph(student_logits)
    log_s = F.log_softmax(student / temperature, dim=-1)
    log_t = F.log_softmax(teacher / temperature, dim=-1)
    if kind == "kl":
        per_row = (log_t.exp() * (log_t - log_s)).sum(dim=-1)
        return per_row.mean() * (temperature ** 2)
    return (log_s.exp() - log_t.exp()).pow(2).mean()


def average_teachers(teacher_logits: Sequence[torch.Tensor], *,
                     temperature: float = 1.0) -> torch.Tensor:
    """Several teachers as one: ``T * log(mean_k softmax(z_k / T))``.

    Its softmax at temperature ``T`` is exactly the mean of the teachers' per-token
    distributions at ``T`` (the soft labels are averaged as probabilities, not as logits),
    so :func:`distillation` at the same ``T`` distils from that mean. Computed as a
    ``logsumexp`` of log-probabilities: finite wherever the inputs are. With one teacher it
    returns that teacher's logits up to a constant per row (the same distribution).

    Args:
        teacher_logits: K >= 1 tensors ``[N, C]`` (the same tokens, the same labels), any
            float dtype.
        temperature: ``T`` > 0, the temperature the distillation uses.

    Returns:
        ``[N, C]`` float32, detached.
    """
    if not teacher_logits:
        raise ValueError("average_teachers: needs at least one teacher")
    shape = teacher_logits[0].shape
    if len(shape) != 2 or any(t.shape != shape for t in teacher_logits):
        raise ValueError(f"average_teachers: teacher logits {[tuple(t.shape) for t in teacher_logits]} "
                         "must all be the same [N,C]")
    if temperature <= 0:
        raise ValueError(f"average_teachers: temperature must be > 0, got {temperature}")
    log_p = torch.stack([F.log_softmax(t.detach().float() / temperature, dim=-1)
                         for t in teacher_logits])  # [K, N, C]
    return temperature * (torch.logsumexp(log_p, dim=0) - math.log(len(teacher_logits)))
