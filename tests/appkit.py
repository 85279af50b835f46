"""Helpers for the app tests: an isolated store/queue/checkpoint folder per test through
the ``CONCNER_*`` environment, and AppTest runs of one page of ``app.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60


def app_env(monkeypatch, tmp_path: Path) -> str:
    """Point the app (same process as AppTest) at a fresh store; returns the database URL."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    monkeypatch.setenv("CONCNER_SERVICES__QUEUE_PATH", str(tmp_path / "queue.db"))
    monkeypatch.setenv("CONCNER_SERVICES__CHECKPOINTS", str(tmp_path / "models"))
    monkeypatch.setenv("CONCNER_SERVICES__ARGILLA_URL", "http://127.0.0.1:9")  # nothing there
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    monkeypatch.delenv("CONCNER_ADMIN_PASSWORD", raising=False)
    return url


def open_page(page: str | None = None, *, project: str | None = None):
    """Run ``app.py`` (optionally switched to ``pages/<page>.py``) headless."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if project is not None:
        at.session_state["concner_project"] = project
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py")
        at.run()
    return at


def no_exception(at) -> None:
    if at.exception:
        pytest.fail("app raised: " + "\n".join(str(e.value) for e in at.exception))


def markdown_text(at) -> str:
    return "\n".join(m.value for m in at.markdown)
