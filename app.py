"""ConCNER Studio: the Streamlit app (`streamlit run app.py`, or `concner up`).

Pages live in ``pages/`` and stay thin: they read the store, show, and enqueue jobs;
nothing here trains a model or waits for a long job.
"""

import streamlit as st

from concner.errors import ConcnerError
from concner.ui.context import get_store, project_picker

st.set_page_config(page_title="ConCNER Studio", page_icon=":material/translate:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/upload_file:"),
    st.Page("pages/review.py", title="Review", icon=":material/rate_review:"),
    st.Page("pages/quick_review.py", title="Quick review", icon=":material/bolt:"),
    st.Page("pages/dashboard.py", title="Dashboard", icon=":material/monitoring:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/models.py", title="Models", icon=":material/deployed_code:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]

navigation = st.navigation(PAGES)
st.sidebar.title("ConCNER Studio")
try:
    project_picker(get_store())
except ConcnerError as exc:  # e.g. the database cannot be reached: say so on every page
    st.error(f"The store is not available: {exc}")
    st.stop()
navigation.run()
