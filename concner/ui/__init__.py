"""View helpers for the Streamlit app: HTML highlighting, Altair charts, access control,
store reads shaped for pages. Pages in ``pages/`` stay thin and call these; nothing here
trains a model or blocks on a long job (jobs go through :mod:`concner.jobs.queue`)."""
