"""Helpers for the app tests: an isolated store/queue/checkpoint folder per test through
the ``CONCNER_*`` environment, and AppTest runs of one page of ``app.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60


def _always_navigation() -> None:
    """Make AppTest run pages the way the served app does after its first request.

    ``AppTest.run`` resets Streamlit's legacy ``pages/``-folder detection before every run,
    so a run of a switched-to page would start in legacy mode, where the page's
    ``ensure_navigation()`` reruns through ``app.py`` and a clicked button's trigger is
    lost. A served app leaves legacy mode for good on its first run of ``app.py``; this
    makes every AppTest run start there too.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    if getattr(app_test.PagesManager, "_concner_v2", False):
        return

    class NavigationPagesManager(PagesManager):
        _concner_v2 = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    app_test.PagesManager = NavigationPagesManager


_always_navigation()


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


def trained_store(folder: Path, *, targets=("de", "ar"), name: str = "demo"):
    """A store at ``folder`` with project ``name`` (tiny encoder, synthetic data), one
    finished retrain (metrics, an active model) and the pool predicted by that model.
    Runs the worker's job functions in this process (about a few seconds)."""
    import torch
    from storekit import TINY_TRAINING, make_project, tiny_encoder

    from concner.config import load_config
    from concner.jobs.context import JobContext
    from concner.jobs.predict import execute_predict
    from concner.jobs.registry import ModelRegistry
    from concner.jobs.retrain import execute_retrain
    from concner.store import Store

    torch.set_num_threads(1)
    url = f"sqlite:///{folder / 'store.db'}"
    store = Store(url)
    # 6 epochs: the tiny model then finds the entities of the synthetic data (F1 1.0 on dev)
    training = {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": 6}}
    make_project(store, name, tiny_encoder(folder), targets=targets, n_source=24, n_dev=8,
                 n_pool=12, n_source_pool=5, training=training)
    ctx = JobContext(store, ModelRegistry(store, str(folder / "models")), load_config(env={}),
                     "test-worker")
    run_id, _ = store.request_run(name)
    status = execute_retrain(ctx, name, run_id)
    if status != "succeeded":
        raise RuntimeError(f"retrain {status}: {store.get_run(run_id).error}")
    predict_id, _ = store.request_run(name, kind="predict")
    status = execute_predict(ctx, name, predict_id)
    if status != "succeeded":
        raise RuntimeError(f"predict {status}: {store.get_run(predict_id).error}")
    return store


def use_store(monkeypatch, folder: Path) -> None:
    """Point the app at an existing store folder built by :func:`trained_store`."""
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", f"sqlite:///{folder / 'store.db'}")
    monkeypatch.setenv("CONCNER_SERVICES__QUEUE_PATH", str(folder / "queue.db"))
    monkeypatch.setenv("CONCNER_SERVICES__CHECKPOINTS", str(folder / "models"))
    monkeypatch.setenv("CONCNER_SERVICES__ARGILLA_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    monkeypatch.delenv("CONCNER_ADMIN_PASSWORD", raising=False)
