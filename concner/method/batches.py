"""Training batches for :mod:`concner.method.training`: source/translation pairing, stage-1 batches
(one forward pass over ``[sources; translations]``), distillation batches with the
teacher's cached logits, and the teacher pass itself.

Every batch is a dict of tensors on the training device as the
:class:`~concner.method.encoding.Collator` makes it (``input_ids``, ``attention_mask``,
``labels``, ``word_ids``: ``[R, T]``), plus:

- stage 1: ``tcl_src`` / ``tcl_tgt`` ``[K]`` long: rows of the K (source, translation)
  pairs that TCL contrasts (one pair per distinct source sentence of the batch); with
  entity alignments (TCL at entity level), also ``entity_index`` ``[R, T]`` long (the
  entity a first sub-word belongs to, ``-1`` for none) and ``tcl_entity_src`` /
  ``tcl_entity_tgt`` ``[E]`` long: the aligned entities of those K pairs;
- distillation: ``n_target`` (int: the first rows are target sentences, any further rows a
  source batch for ``λ_src·CE``) and ``teacher`` ``[N_first, C]`` float32: the teacher's
  logits on the first sub-words of the target rows, in (row, position) order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch

from concner.errors import DataFormatError
from concner.labels import tags_to_spans
from concner.method.encoding import Collator, Encoded, LengthGroupedBatchSampler, PairBatchSampler
from concner.method.model import NerModel
from concner.sentence import Sentence

Batch = dict


def pair_translations(source: Sequence[Sentence], translations: Sequence[Sentence],
                      pairs: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """``(source_index, translation_index)`` pairs: ``pairs`` when given (checked), else by
    ``meta["source_id"] == source.id`` when every translation carries one, else by position
    (then there must be exactly one translation per source sentence)."""
    if pairs is not None:
        for i, j in pairs:
            if not (0 <= i < len(source) and 0 <= j < len(translations)):
                raise DataFormatError(f"pair ({i}, {j}) is out of range: {len(source)} source "
                                      f"sentences, {len(translations)} translations")
        return list(pairs)
    ids = [t.meta.get("source_id") for t in translations]
    if translations and all(i is not None for i in ids):
        index = {s.id: k for k, s in enumerate(source)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise DataFormatError(
                f"{len(missing)} translations name a source_id that is not among the source "
                f"sentences (first: {missing[0]!r}); translate the same source file you train on")
        return [(index[i], j) for j, i in enumerate(ids)]
    if len(translations) != len(source):
        raise DataFormatError(
            f"{len(translations)} translations for {len(source)} source sentences and no "
            "meta.source_id on them: give one translation per source sentence, in order, or "
            "keep the source_id the translate command writes")
    return [(k, k) for k in range(len(source))]


#: a word span ``(start, end)`` (end exclusive) of a source entity and of its projection
EntityPair = tuple[tuple[int, int], tuple[int, int]]


def align_entities(source_tags: Sequence[str] | None,
                   translation_tags: Sequence[str] | None) -> list[EntityPair] | None:
    """Each source entity's projected span in the translation, read from the two IOB2 tag
    sequences: the k-th entity of a type in the source is the k-th entity of that type in
    the translation (label projection keeps every entity and its type; only the order of
    entities of different types may change, e.g. when the MT engine reorders them). None
    when that cannot be recovered: the entities per type differ in number, or a side has no
    tags. Spans are word ranges, source order."""
    if source_tags is None or translation_tags is None:
        return None
    src = tags_to_spans(source_tags, [(i, i + 1) for i in range(len(source_tags))])
    tgt = tags_to_spans(translation_tags, [(i, i + 1) for i in range(len(translation_tags))])
    by_type: dict[str, list[tuple[int, int]]] = {}
    for span in tgt:
        by_type.setdefault(span.label, []).append((span.start, span.end))
    if sorted(sp.label for sp in src) != sorted(sp.label for sp in tgt):
        return None
    taken: dict[str, int] = {}
    out: list[EntityPair] = []
    for span in src:
        k = taken.get(span.label, 0)
        taken[span.label] = k + 1
        out.append(((span.start, span.end), by_type[span.label][k]))
    return out


def _word_positions(encoded: Encoded, span: tuple[int, int]) -> list[int]:
    """Positions of the first sub-words of the words ``span`` covers (truncated words have
    none)."""
    return [p for p, w in enumerate(encoded.word_ids) if span[0] <= w < span[1]]


class _Batches:
    def __init__(self, sampler, collate: Collator, device: torch.device):
        self.sampler, self.collate, self.device = sampler, collate, device

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _tensors(self, rows: list[Encoded]) -> Batch:
        return {k: v.to(self.device) for k, v in self.collate(rows).items()}


class Stage1Batches(_Batches):
    """Batches of ``batch_size`` units; a unit is a (source, translation) pair or a source
    sentence without translation. An epoch visits every unit once (a source translated
    into k languages is seen k times). Batches group units of similar length.
    ``entity_pairs`` (TCL at entity level): per pair, its :func:`align_entities` result
    (None: not aligned, no entity contrast for it)."""

    def __init__(self, source: list[Encoded], translations: list[Encoded] | None,
                 pairs: Sequence[tuple[int, int]], batch_size: int, seed: int,
                 collate: Collator, device: torch.device,
                 entity_pairs: Sequence[list[EntityPair] | None] | None = None):
        self.source, self.translations = source, translations or []
        self.entity_pairs = entity_pairs
        paired = {i for i, _ in pairs}
        self.units: list[tuple[int, int | None]] = [(i, j) for i, j in pairs]
        self.units += [(i, None) for i in range(len(source)) if i not in paired]
        lengths = [max(len(source[i]), len(self.translations[j]) if j is not None else 0)
                   for i, j in self.units]
        cls = PairBatchSampler if pairs else LengthGroupedBatchSampler
        super().__init__(cls(lengths, batch_size, seed), collate, device)

    def __iter__(self) -> Iterator[Batch]:
        for unit_ids in self.sampler:
            yield self.make(unit_ids)

    def make(self, unit_ids: Sequence[int]) -> Batch:
        """Rows: the batch's distinct source sentences, then every translation."""
        src_rows: dict[int, int] = {}
        for u in unit_ids:
            src_rows.setdefault(self.units[u][0], len(src_rows))
        rows = [self.source[i] for i in src_rows]
        tcl_src, tcl_tgt, tcl_units, used = [], [], [], set()
        for u in unit_ids:
            i, j = self.units[u]
            if j is None:
                continue
            if i not in used:  # one TCL pair per distinct source: no duplicate as negative
                used.add(i)
                tcl_src.append(src_rows[i])
                tcl_tgt.append(len(rows))
                tcl_units.append(u)
            rows.append(self.translations[j])
        batch = self._tensors(rows)
        batch["tcl_src"] = torch.tensor(tcl_src, dtype=torch.long, device=self.device)
        batch["tcl_tgt"] = torch.tensor(tcl_tgt, dtype=torch.long, device=self.device)
        if self.entity_pairs is not None:
            self._entities(batch, rows, list(zip(tcl_src, tcl_tgt, tcl_units)))
        return batch

    def _entities(self, batch: Batch, rows: list[Encoded],
                  tcl: list[tuple[int, int, int]]) -> None:
        """``entity_index`` and ``tcl_entity_src``/``tcl_entity_tgt`` of the TCL pairs."""
        index = torch.full(batch["input_ids"].shape, -1, dtype=torch.long)
        ent_src, ent_tgt = [], []
        for src_row, tgt_row, u in tcl:
            for src_span, tgt_span in self.entity_pairs[u] or []:
                for row, span, side in ((src_row, src_span, ent_src), (tgt_row, tgt_span, ent_tgt)):
                    side.append(len(ent_src) + len(ent_tgt))
                    index[row, _word_positions(rows[row], span)] = side[-1]
        batch["entity_index"] = index.to(self.device)
        batch["tcl_entity_src"] = torch.tensor(ent_src, dtype=torch.long, device=self.device)
        batch["tcl_entity_tgt"] = torch.tensor(ent_tgt, dtype=torch.long, device=self.device)


class DistillationBatches(_Batches):
    """Batches of unlabelled target sentences with the teacher's cached logits; with a
    ``source`` list, each batch also carries the next source batch (cycled through the
    source sentences, reshuffled on every pass) for ``λ_src·CE``."""

    def __init__(self, target: list[Encoded], teacher: list[torch.Tensor],
                 source: list[Encoded] | None, batch_size: int, seed: int,
                 collate: Collator, device: torch.device):
        self.target, self.teacher, self.source = target, teacher, source or []
        super().__init__(LengthGroupedBatchSampler([len(e) for e in target], batch_size, seed),
                         collate, device)
        self._src_sampler = None
        if self.source:
            self._src_sampler = LengthGroupedBatchSampler([len(e) for e in self.source],
                                                          batch_size, seed + 1)
        self._src_pass, self._src_iter = 0, iter(())

    def _next_source(self) -> list[int]:
        ids = next(self._src_iter, None)
        if ids is None:
            self._src_pass += 1
            self._src_sampler.set_epoch(self._src_pass)
            self._src_iter = iter(self._src_sampler)
            ids = next(self._src_iter)
        return ids

    def skip_source_batches(self, n: int) -> None:
        """Draw and drop ``n`` source batches: a resumed run continues the source cycle
        where the interrupted one stopped (it drew one per distillation batch)."""
        for _ in range(n if self._src_sampler is not None else 0):
            self._next_source()

    def __iter__(self) -> Iterator[Batch]:
        for ids in self.sampler:
            rows = [self.target[i] for i in ids]
            if self._src_sampler is not None:
                rows += [self.source[i] for i in self._next_source()]
            batch = self._tensors(rows)
            batch["n_target"] = len(ids)
            batch["teacher"] = torch.cat([self.teacher[i] for i in ids]).to(self.device)
            yield batch


@torch.no_grad()
def teacher_logits(model: NerModel, target: list[Encoded], collate: Collator,
                   device: torch.device, batch_size: int,
                   autocast: Callable[[], contextlib.AbstractContextManager]) -> list[torch.Tensor]:
    """Per sentence, the model's logits on its first sub-words (``[n_first_i, C]`` float32,
    CPU), in eval mode, longest sentences first. Computed once before distillation: the
    teacher is frozen, so its outputs are the same in every distillation epoch."""
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = [torch.empty(0)] * len(target)
    order = sorted(range(len(target)), key=lambda i: -len(target[i]))
    try:
        with autocast():
            for k in range(0, len(order), batch_size):
                ids = order[k:k + batch_size]
                batch = {n: v.to(device) for n, v in collate([target[i] for i in ids]).items()}
                logits = model(batch["input_ids"], batch["attention_mask"]).logits.float()
                first = batch["word_ids"] >= 0
                for row, i in enumerate(ids):
                    out[i] = logits[row][first[row]].cpu()
    finally:
        model.train(was_training)
    return out
