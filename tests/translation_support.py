"""Shared helpers of the translation tests: skip (or, in CI, fail) when a Debian package
is missing; a hand-built FreeDict dictionary."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def require(condition: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``condition``; with CONCNER_REQUIRE_SERVICES=1, fail."""
    if condition:
        return
    if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (CONCNER_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def require_apertium(pair: str = "eng-spa") -> None:
    binary = shutil.which("apertium")
    require(binary is not None, "apertium is not installed (apt-get install apertium)")
    listed = subprocess.run(["apertium", "-l"], capture_output=True, text=True, check=False).stdout.split()
    require(pair in listed, f"Apertium pair {pair} missing (apt-get install apertium-{pair})")


def require_freedict(pair: str, directory: str = "/usr/share/dictd") -> None:
    base = Path(directory) / f"freedict-{pair}"
    present = Path(f"{base}.index").is_file() and Path(f"{base}.dict.dz").is_file()
    require(present, f"FreeDict {pair} missing (apt-get install dict-freedict-{pair})")


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(n: int) -> str:
    """dictd base64 digits, written independently of the code under test."""
    digits = ""
    while True:
        digits, n = B64[n % 64] + digits, n // 64
        if n == 0:
            return digits


def write_freedict(folder: Path, pair: str, entries: list[tuple[str, str]]) -> Path:
    """``freedict-<pair>.index`` and ``.dict.dz`` in ``folder`` with ``(headword, dictd
    body)`` entries, in the given order (the first sense line is the translation)."""
    folder.mkdir(parents=True, exist_ok=True)
    data, index = b"", []
    for head, body in entries:
        raw = body.encode("utf-8")
        index.append(f"{head}\t{_b64(len(data))}\t{_b64(len(raw))}")
        data += raw
    (folder / f"freedict-{pair}.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    with gzip.open(folder / f"freedict-{pair}.dict.dz", "wb") as out:
        out.write(data)
    return folder
