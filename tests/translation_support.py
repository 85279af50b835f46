"""Shared helpers of the translation tests: skip (or, in CI, fail) when a Debian package
is missing."""

from __future__ import annotations

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
