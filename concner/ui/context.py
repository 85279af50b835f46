"""What every page needs: the configuration, the store, the current project.

The app reads its configuration from the TOML file named by ``CONCNER_CONFIG`` (if any)
plus ``CONCNER_<SECTION>__<FIELD>`` overrides, exactly as the worker does, so both see
the same store and queue. The store is one cached object per database URL.

The current project lives in the session AND in the address (``?project=NAME``): a
reload, a bookmark or a shared link opens the same project, and every page run writes it
back (page switches keep it). An address that names an unknown project selects none and
says so, so nothing is imported into a project the user did not pick.
"""

from __future__ import annotations

import os

import streamlit as st

from concner.config import Config, load_config

CONFIG_ENV = "CONCNER_CONFIG"
_PROJECT_KEY = "concner_project"
#: the query parameter (``st.query_params``) that names the current project
PROJECT_PARAM = "project"
_PICKER_KEY = "project_select"


def get_config() -> Config:
    """The app's configuration (re-read each run: cheap, and env changes are seen)."""
    return load_config(os.environ.get(CONFIG_ENV) or None)


@st.cache_resource(show_spinner=False)
def _store(url: str):
    from concner.store import Store

    return Store(url)


def get_store():
    """The store for ``services.database_url`` (migrated to the latest schema once)."""
    return _store(get_config().services.database_url)


def current_project_name() -> str | None:
    return st.session_state.get(_PROJECT_KEY)


def set_current_project(name: str | None) -> None:
    """Make ``name`` the current project of the session and of the address (None: none)."""
    st.session_state[_PROJECT_KEY] = name
    if name:
        if st.query_params.get(PROJECT_PARAM) != name:
            st.query_params[PROJECT_PARAM] = name
    elif PROJECT_PARAM in st.query_params:
        del st.query_params[PROJECT_PARAM]


def unknown_project_text(store, wanted: str) -> str:
    """Why the address's project is not selected: the store's own "no project named"
    message plus what to do."""
    from concner.errors import ProjectNotFound

    try:
        store.get_project(wanted)
    except ProjectNotFound as exc:
        return (f"The address names project {wanted!r} (?{PROJECT_PARAM}={wanted}), but {exc}."
                " Pick a project in the sidebar's Project box.")
    return ""


def _picked() -> None:
    set_current_project(st.session_state.get(_PICKER_KEY))


def project_picker(store) -> str | None:
    """Sidebar select box of the store's projects; returns the chosen name (or None).

    The address's ``?project=`` wins when it differs from the session's project (a
    reload, a link); a project the store does not have selects none, with a message."""
    names = [p.name for p in store.list_projects()]
    if not names:
        st.sidebar.caption("No project yet: create one on the Overview page.")
        set_current_project(None)
        return None
    current = current_project_name()
    wanted = st.query_params.get(PROJECT_PARAM)
    if wanted is not None and wanted != current:
        st.session_state.pop(_PICKER_KEY, None)  # the box shows the address's project
        if wanted not in names:
            st.sidebar.error(unknown_project_text(store, wanted))
            st.session_state[_PROJECT_KEY] = None  # the address keeps the name: say it again
            st.sidebar.selectbox("Project", names, index=None, key=_PICKER_KEY,
                                 on_change=_picked, placeholder="Pick a project")
            return None
        current = wanted
    index = names.index(current) if current in names else 0
    chosen = st.sidebar.selectbox("Project", names, index=index, key=_PICKER_KEY,
                                  on_change=_picked)
    set_current_project(chosen)
    return chosen


def require_project(store):
    """The current project row, or an info message and ``st.stop()`` when there is none."""
    name = current_project_name()
    if not name:
        st.info("Pick a project in the sidebar's Project box, or create one on the Overview "
                "page.")
        st.stop()
    return store.get_project(name)


def ensure_navigation() -> None:
    """Run this page through ``app.py``'s ``st.navigation``, never as a stand-alone script.

    Streamlit treats a ``pages/`` folder next to the entry script as a legacy multipage
    app until the entry script calls ``st.navigation``; when the first request a server
    sees is a page URL (a bookmark after a restart), the page would run without
    ``app.py`` (no sidebar, no project). Pages call this first: it switches Streamlit to
    ``st.navigation`` mode and reruns, which goes through ``app.py`` to the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
