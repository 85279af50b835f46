"""Quick review in a real browser: single keys decide the predicted spans of the
highest-ranked sentence, and the decided sentence lands in the store as the user's
correction (Debian's Chromium through Playwright against ``streamlit run app.py`` on a
store with a trained tiny model; no worker or Argilla needed)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
from prockit import ProcessScope
from test_browser import _http_ok  # the journey's helper, not its tests

from concner.argilla.processes import free_port

FIRST_RENDER_MS = 90_000
STEP_MS = 60_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from appkit import trained_store
    from storekit import service_env

    folder = tmp_path_factory.mktemp("quick")
    trained_store(folder)
    env = service_env(folder, f"sqlite:///{folder / 'store.db'}",
                      CONCNER_SERVICES__ARGILLA_URL="http://127.0.0.1:9", HF_HUB_OFFLINE="1")
    env.pop("CONCNER_ADMIN_PASSWORD", None)
    port = free_port()
    with ProcessScope(timeout=30) as scope, open(folder / "app.log", "wb") as log:
        proc = scope.popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                            "--server.address", "127.0.0.1", "--server.port", str(port),
                            "--server.headless", "true", "--server.fileWatcherType", "none",
                            "--browser.gatherUsageStats", "false"],
                           cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not _http_ok(f"http://127.0.0.1:{port}/_stcore/health"):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (folder / "app.log").read_text()[-2000:]
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", folder


def _caption(page):
    return page.locator("[data-testid='stCaptionContainer']", has_text=" in the ask order")


def _unfocus(page) -> None:
    """Keys go to the page, not to the name box: click the title."""
    page.get_by_role("heading", name="Quick review").click()


def test_single_keys_decide_the_spans_and_store_the_correction(browser, app):
    from playwright.sync_api import expect

    from concner.store import Store

    url, folder = app
    store = Store(f"sqlite:///{folder / 'store.db'}", migrate=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/quick_review?project=demo")
        name = page.get_by_label("Your name (stored as the author of your decisions)")
        name.wait_for(timeout=FIRST_RENDER_MS)
        name.fill("lena")
        name.press("Enter")
        reject = page.get_by_role("button", name="Reject")
        expect(reject).to_be_enabled(timeout=STEP_MS)  # the name is in
        _unfocus(page)
        # skip (key S) to a sentence with predicted spans
        for _ in range(20):
            expect(_caption(page)).to_be_visible(timeout=STEP_MS)
            if "span 1 of" in _caption(page).inner_text():
                break
            first = _caption(page).inner_text()
            page.keyboard.press("s")
            expect(_caption(page)).not_to_have_text(first, timeout=STEP_MS)
        text = _caption(page).inner_text()
        assert "span 1 of" in text
        sid = text.split("·")[0].strip().strip("`")
        n_spans = int(text.split("span 1 of ")[1].split(":")[0])
        before = store.annotation_count("demo")
        page.keyboard.press("x")  # reject the first span
        if n_spans > 1:
            expect(_caption(page)).to_contain_text("span 2 of", timeout=STEP_MS)
        for k in range(n_spans - 1):
            page.keyboard.press("a")  # accept the others
            if k < n_spans - 2:
                expect(_caption(page)).to_contain_text(f"span {k + 3} of", timeout=STEP_MS)
        expect(page.get_by_text(f"Stored {sid} as lena's correction")).to_be_visible(
            timeout=STEP_MS)
        assert store.annotation_count("demo") == before + 1
        (labelled,) = [s for s in store.sentences("demo", labelled=True) if s.id == sid]
        db_id = labelled.meta["db_id"]
        assert store.label_authors([db_id])[db_id] == ["lena"]
        mv = store.active_model_version("demo")
        (pred,) = [p for p in store.predictions(mv.id) if p.sentence_id == db_id]
        first_entity = next(i for i, t in enumerate(pred.tags) if t != "O")
        assert labelled.tags[first_entity] == "O"  # the rejected span
    finally:
        page.close()
