"""Health of the services the app depends on: the store, the queue's workers, Argilla."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import make_url

from concner.errors import ConcnerError
from concner.ui.views import worker_status


def store_status(store) -> tuple[bool, str]:
    try:
        n = len(store.list_projects())
    except ConcnerError as exc:
        return False, str(exc)
    url = make_url(store.url).render_as_string(hide_password=True)
    return True, f"{store.dialect} at {url} · {n} project(s)"


def render(store, config, project=None) -> None:
    """Three status lines (store, queue worker, Argilla) with a coloured marker each;
    ``project`` (a Project row or None) adds its Argilla datasets' progress."""
    ok, text = store_status(store)
    _line("Store", ok, text)
    try:
        ok, text = worker_status(store.workers())
    except ConcnerError as exc:
        ok, text = False, str(exc)
    _line("Queue worker", ok, text)
    from concner.ui.argilla_view import argilla_status

    status = argilla_status(config, project)
    _line("Argilla", status.reachable, status.message)
    if status.progress is not None and not status.progress.empty:
        st.dataframe(status.progress, hide_index=True)


def _line(what: str, ok: bool, text: str) -> None:
    icon = ":green[●]" if ok else ":red[●]"
    st.markdown(f"{icon} **{what}**: {text}")
