"""Training only the word-embedding rows a training stage's text uses.

A multilingual encoder keeps most of its weights in the word-embedding matrix (``[V, H]``,
250,037 x 384 for multilingual-e5-small: 82% of its parameters), and the product trains it
(``model.freeze_embeddings = false``). A stage's batches use only the rows of the pieces
that occur in its text (some 30,000 for 1,000 English sentences, their translations and
2,000 target sentences), yet a dense matrix makes every step pay for all ``V`` rows: a
dense ``[V, H]`` gradient, its share of the clipping norm, and AdamW's update of ``V x H``
weights and two moment buffers, and each per-epoch checkpoint writes all of it three
times.

:func:`train_used_rows` swaps the encoder's ``nn.Embedding`` for a
:class:`UsedRowsEmbedding` while a stage trains: the used rows become one trainable
``[U, H]`` parameter (same parameter name, so optimizer groups and checkpoints need no
special case), every other row is read from the untouched full matrix. When the stage ends
the trained rows are written back into the full matrix and the original module returns, so
the saved model keeps its whole vocabulary: any new text is tokenised exactly as before,
and a piece no training text used keeps its pretrained vector.

Same result as training the dense matrix, up to float rounding, with one difference:
a row no batch uses has a zero gradient, hence zero Adam moments, so dense AdamW changes it
only by weight decay (a factor ``prod(1 - lr_t * weight_decay)``: 0.9993 over the 565 steps
of a default full retrain); here such a row keeps its pretrained value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from concner.method.model import NerModel

__all__ = ["UsedRowsEmbedding", "train_used_rows", "used_piece_ids"]


def used_piece_ids(sequences: Iterable[Iterable[int]], always: Iterable[int] = ()) -> list[int]:
    """The sorted distinct sub-word ids of ``sequences`` (each a list of input ids) plus
    ``always`` (the special tokens: padding must be among the rows)."""
    used = set(always)
    for ids in sequences:
        used.update(ids)
    return sorted(used)


class UsedRowsEmbedding(nn.Module):
    """A word embedding whose rows ``used_ids`` are trainable and the rest read-only.

    ``weight`` ``[U, H]``: the trainable rows, in ``used_ids`` order; ``full`` ``[V, H]``
    (a non-persistent buffer sharing the original matrix's storage, never written while
    swapped in); ``row_of`` ``[V]`` long: the row of ``weight`` for each id, ``-1`` for
    the read-only ones. ``state_dict()`` holds ``weight`` only, under the original name.
    """

    def __init__(self, original: nn.Embedding, used_ids: list[int]):
        super().__init__()
        full = original.weight.detach()
        index = torch.tensor(used_ids, dtype=torch.long, device=full.device)
        row_of = torch.full((full.shape[0],), -1, dtype=torch.long, device=full.device)
        row_of[index] = torch.arange(len(used_ids), device=full.device)
        self.weight = nn.Parameter(full.index_select(0, index).clone())
        self.register_buffer("full", full, persistent=False)
        self.register_buffer("row_of", row_of, persistent=False)
        self.register_buffer("used_ids", index, persistent=False)
        pad = original.padding_idx
        self.padding_row = None if pad is None or row_of[pad] < 0 else int(row_of[pad])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` ``[B, T]`` (ids of the full vocabulary) -> ``[B, T, H]``."""
        rows = self.row_of[input_ids]
        trained = F.embedding(rows.clamp(min=0), self.weight, padding_idx=self.padding_row)
        used = rows >= 0
        if bool(used.all()):
            return trained
        return torch.where(used.unsqueeze(-1), trained, F.embedding(input_ids, self.full))

    def write_back(self, original: nn.Embedding) -> None:
        """Copy the trained rows into ``original``'s matrix, in place."""
        with torch.no_grad():
            original.weight.index_copy_(0, self.used_ids, self.weight.to(original.weight.dtype))


@contextlib.contextmanager
def train_used_rows(model: NerModel, used_ids: list[int]) -> Iterator[UsedRowsEmbedding | None]:
    """Within the block, only the word-embedding rows ``used_ids`` are parameters of
    ``model`` (see the module doc); afterwards they are back in the full matrix. Yields
    None, changing nothing, when the word embeddings are frozen or every row is used."""
    original = model.encoder.get_input_embeddings()
    if not original.weight.requires_grad or len(used_ids) >= original.weight.shape[0]:
        yield None
        return
    swapped = UsedRowsEmbedding(original, used_ids)
    model.encoder.set_input_embeddings(swapped)
    try:
        yield swapped
    finally:
        swapped.write_back(original)
        model.encoder.set_input_embeddings(original)
