"""What the end-to-end tests share: where Chromium is, its flags, and how a missing
service is reported (a skip locally, a failure in CI)."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Without the background-networking flags Chromium's connections are refused by a closed
#: network, many at a time; these are the flags known to work on these machines.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(reason: str):
    """Skip, or fail under ``CONCNER_REQUIRE_SERVICES=1`` (CI), naming what is missing."""
    if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required for the browser test: {reason}")
    pytest.skip(reason)
