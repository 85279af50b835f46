"""Health of the services the app depends on: the store, the queue's workers, Argilla."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import make_url

from concner.errors import ConcnerError
from concner.jobs.liveness import worker_status
from concner.stack.supervisor import read_state, state_lines, state_path


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
        ok, text = worker_status(store.workers(),
                                 timeout_s=config.services.lock_stale_seconds)
    except ConcnerError as exc:
        ok, text = False, str(exc)
    _line("Queue worker", ok, text)
    for ok, text in supervisor_lines(config):
        _line("Supervisor", ok, text)
    status = _cached_argilla_status(config, project)
    _line("Argilla", status.reachable, status.message)
    if status.progress is not None and not status.progress.empty:
        st.dataframe(status.progress, hide_index=True)


def supervisor_lines(config) -> list[tuple[bool, str]]:
    """What ``concner up``'s state file (``<services.run_dir>/supervisor.json``) says is
    wrong: a part given up ("worker gave up after 6 crashes in 10 min ...: see <log>;
    restart with `concner up`"), one waiting to be restarted, or ``concner up`` gone."""
    return state_lines(read_state(state_path(config.services)))


#: seconds an Argilla status stays fresh in a session (it reads every record's answers)
ARGILLA_STATUS_TTL = 15.0


def _cached_argilla_status(config, project):
    """:func:`argilla_status`, reused within a session for :data:`ARGILLA_STATUS_TTL`."""
    import time

    from concner.ui.argilla_view import argilla_status

    key = (f"concner_argilla_status|{config.services.argilla_url}|"
           f"{project.name if project is not None else ''}")
    cached = st.session_state.get(key)
    if cached is not None and time.monotonic() - cached[0] < ARGILLA_STATUS_TTL:
        return cached[1]
    status = argilla_status(config, project)
    st.session_state[key] = (time.monotonic(), status)
    return status


def _line(what: str, ok: bool, text: str) -> None:
    icon = ":green[●]" if ok else ":red[●]"
    st.markdown(f"{icon} **{what}**: {text}")
