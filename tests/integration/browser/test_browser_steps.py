"""The browser test's step guard: a step that times out names itself, leaves a screenshot
of the page as it was and quotes the app's log, instead of a bare Playwright timeout."""

from __future__ import annotations

import pytest
from test_browser import App, StepFailed

pytestmark = [pytest.mark.integration]


def test_a_timed_out_step_names_itself_and_leaves_a_screenshot(browser, tmp_path, monkeypatch):
    import test_browser
    from playwright.sync_api import expect

    monkeypatch.setattr(test_browser, "FAILURES", tmp_path / "failures")
    log = tmp_path / "app.log"
    log.write_text("line one\nTraceback: the app's last words\n", encoding="utf-8")
    page = browser.new_page()
    page.set_content("<main><p>Nothing to see</p></main>")
    app = App(page, "http://127.0.0.1:9", log)
    with pytest.raises(StepFailed) as info, app.step("3. import the Spanish pool"):
        expect(page.get_by_text("Imported 8 sentences")).to_be_visible(timeout=500)
    message = str(info.value)
    assert "step '3. import the Spanish pool' failed" in message
    assert "the app's last words" in message
    shot = tmp_path / "failures" / "3-import-the-spanish-pool.png"
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(shot) in message
    # a step that passes leaves nothing behind
    with app.step("read the page"):
        expect(page.get_by_text("Nothing to see")).to_be_visible(timeout=5000)
    assert sorted(p.name for p in (tmp_path / "failures").iterdir()) == [shot.name]
    page.close()
