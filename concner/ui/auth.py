"""Admin access for the app's destructive or sensitive actions (delete, export, training
config).

When a password is configured (``admin_password`` in Streamlit secrets, or the
``CONCNER_ADMIN_PASSWORD`` environment variable) those actions need a login; without one
the app is open (a single-user local install). The password is compared in constant time
and never shown or logged; the session remembers only that the login succeeded (the
password field is cleared after each attempt).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

ENV_VAR = "CONCNER_ADMIN_PASSWORD"
SECRET_KEY = "admin_password"
_SESSION_FLAG = "concner_admin_ok"


def configured_password(secrets: Mapping | None = None,
                        env: Mapping[str, str] | None = None) -> str | None:
    """The admin password from secrets (preferred) or the environment, else ``None``."""
    if secrets is None:
        secrets = _streamlit_secrets()
    value = None
    try:
        value = secrets.get(SECRET_KEY) if secrets is not None else None
    except Exception:  # noqa: BLE001 - a missing secrets.toml raises on access
        value = None
    if not value:
        value = (os.environ if env is None else env).get(ENV_VAR) or None
    return str(value) if value else None


def _streamlit_secrets():
    try:
        import streamlit as st

        return st.secrets
    except Exception:  # noqa: BLE001
        return None


def check_password(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def is_admin(session: Mapping, password: str | None) -> bool:
    """True when no password is configured or this session has logged in."""
    return password is None or bool(session.get(_SESSION_FLAG))


def admin_gate(action: str) -> bool:
    """Render a login form if needed; True when the caller may show ``action``'s controls."""
    import streamlit as st

    password = configured_password()
    if is_admin(st.session_state, password):
        return True
    st.info(f"{action} is an admin action. Log in to continue.")
    with st.form(f"login-{action}"):
        given = st.text_input("Admin password", type="password")
        if st.form_submit_button("Log in"):
            ok = check_password(given, password or "")
            if ok:
                st.session_state[_SESSION_FLAG] = True
                st.rerun()
            st.error("Wrong password.")
    return False


def logout() -> None:
    import streamlit as st

    st.session_state.pop(_SESSION_FLAG, None)
