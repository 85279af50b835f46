"""The current project lives in the address (``?project=NAME``): a reload or a link opens
that project on every page, and an unknown name selects none and says so."""

from __future__ import annotations

import pytest
from appkit import APP, TIMEOUT, app_env, no_exception


@pytest.fixture
def store(monkeypatch, tmp_path):
    from concner.store import Store

    store = Store(app_env(monkeypatch, tmp_path))
    for name in ("alpha", "beta"):  # alpha sorts first: the picker's fallback
        store.create_project(name, source_lang="en", target_langs=["sw"],
                             entity_types=["PER"], encoder="/nonexistent")
    return store


def _session(query: dict | None = None):
    """A fresh browser session (a reload) of ``app.py`` at an address with ``query``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    at.run()
    no_exception(at)
    return at


def _picker(at):
    return next(s for s in at.sidebar.selectbox if s.label == "Project")


def test_a_session_started_with_the_query_param_picks_that_project(store):
    at = _session({"project": "beta"})
    assert _picker(at).value == "beta"
    assert at.session_state["concner_project"] == "beta"
    at.switch_page("pages/data.py")
    at.run()
    no_exception(at)
    assert at.session_state["concner_project"] == "beta"
    assert at.query_params["project"] == "beta"  # kept across pages


def test_without_the_param_the_chosen_project_is_written_to_the_address(store):
    at = _session()
    assert _picker(at).value == "alpha"
    assert at.query_params["project"] == "alpha"
    _picker(at).set_value("beta").run()
    no_exception(at)
    assert at.query_params["project"] == "beta"
    assert at.session_state["concner_project"] == "beta"


def test_an_unknown_project_in_the_address_selects_none_and_says_so(store):
    at = _session({"project": "gamma"})
    message = " ".join(e.value for e in at.sidebar.error)
    assert "'gamma'" in message and "known projects: alpha, beta" in message
    assert "Project box" in message  # the control that fixes it, in the sidebar
    assert _picker(at).value is None
    assert at.session_state["concner_project"] is None
    at.switch_page("pages/data.py")
    at.run()
    no_exception(at)
    assert not at.file_uploader  # no page acts on a project the user did not pick
    assert any("sidebar's Project box" in i.value for i in at.info)
    _picker(at).set_value("alpha").run()
    no_exception(at)
    assert at.query_params["project"] == "alpha"
    assert not at.sidebar.error
