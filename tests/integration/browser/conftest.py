"""The real browser the end-to-end tests drive: Debian's Chromium through Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest
from browserkit import CHROMIUM, CHROMIUM_ARGS, missing


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
