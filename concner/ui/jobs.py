"""Queued jobs from the pages: start, cancel, and live progress (never run in the page).

Progress is read from the run rows the worker writes (:class:`concner.store.model_versions.Run`
``progress``: stage, step, total, loss, log tail, a retrain's plan and per-epoch dev F1),
refreshed by ``st.fragment(run_every=)``: one progress line across a retrain's stages with
the elapsed time and an estimate of the time left, and a small chart of the dev F1 per
epoch (:mod:`concner.ui.run_progress`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from concner.errors import ConcnerError
from concner.ui.run_progress import dev_f1_frame, kept_text, overall_fraction, progress_line
from concner.ui.views import run_progress_text, run_reason_text, update_text

LIVE_SECONDS = 2


def _tasks():
    from concner.jobs import queue as tasks

    return tasks


def start_retrain(store, project: str, *, full: bool = False) -> int | None:
    """Queue a retrain; ``full`` forces a full one (else the worker updates the active
    model incrementally when few labels are new). Returns the run that will do it (a new
    one, or the queued one this request joined), and makes the run panel's selector
    follow it (``None`` when the request failed)."""
    try:
        run_id, created = _tasks().request_retrain(store, project, full=full)
    except ConcnerError as exc:
        st.error(str(exc))
        return None
    follow_run("retrain", run_id)
    what = "Full retrain" if full else "Retrain"
    if created:
        st.success(f"{what} queued as run {run_id}.")
    else:
        st.info(f"A retrain is already queued (run {run_id}); this request joins it"
                + (" and makes it a full one." if full else "."))
    warn_not_ready(store, project)
    return run_id


def warn_not_ready(store, project: str) -> None:
    """A warning naming what is missing when the project is not ready for training (an
    on-demand retrain runs anyway; see :mod:`concner.jobs.readiness`)."""
    from concner.jobs.readiness import project_readiness
    from concner.ui.context import get_config

    warning = project_readiness(store, project, get_config()).on_demand_warning("app")
    if warning:
        st.warning(warning[0].upper() + warning[1:])


def follow_run(kind: str, run_id: int) -> None:
    """Show ``run_id`` in the ``kind`` run panel's selector on the next render (call before
    the panel is drawn in the same script run)."""
    st.session_state[f"pick-{kind}"] = run_id


def start_predict(store, project: str) -> None:
    try:
        run_id = _tasks().request_predict(store, project)
    except ConcnerError as exc:
        st.error(str(exc))
        return
    st.success(f"Prediction of the pool queued as run {run_id}.")


def start_sync(project: str) -> None:
    """Ask the worker to sync the project with Argilla now (pull answers, push records)."""
    from concner.errors import ServiceUnavailable

    try:
        _tasks().sync(project)
    except Exception as exc:  # noqa: BLE001 - the queue's storage is down
        st.error(str(ServiceUnavailable(f"cannot enqueue the sync: {exc}")))
        return
    st.success("Sync queued; the worker pulls new answers and retrains when enough arrived, "
               "if the project's automatic retraining is on and it is ready (Overview).")


def cancel(store, run_id: int) -> None:
    try:
        status = store.cancel_run(run_id)
    except ConcnerError as exc:
        st.error(str(exc))
        return
    if status == "cancelled":
        st.info(f"Run {run_id} was cancelled before it started.")
    elif status == "running":
        st.info(f"Run {run_id} was asked to stop; it stops at its next step.")
    else:
        st.info(f"Run {run_id} had already finished ({status}).")


def latest_run(store, project: str, kind: str):
    runs = store.runs(project, kind=kind, limit=1)
    return runs[0] if runs else None


def render_run(run, *, log_lines: int = 12, key: str = "run") -> None:
    """Status, progress bar and log tail of one run."""
    if run is None:
        st.caption("No run yet.")
        return
    text = run_progress_text(run.progress)
    update = update_text(run)
    st.markdown(f"**Run {run.id}** ({run.kind}{', ' + update if update else ''}) · status "
                f"**{run.status}**" + (f" · {text}" if text else ""))
    st.caption(f"Why asked: {run_reason_text(run)}")
    if getattr(run, "update_reason", None):
        st.caption(f"Why {run.update_kind}: {run.update_reason}")
    if run.status == "running":
        line = progress_line(run.progress, elapsed_seconds(run))
        fraction = overall_fraction(run.progress)
        if fraction is not None:
            st.progress(fraction, text=line)
        elif line:
            st.caption(line)
    dev_f1_chart(run.progress)
    if run.error:
        st.error(run.error)
    lines = (run.progress or {}).get("log") or []
    if lines:
        st.code("\n".join(lines[-log_lines:]), language=None)


def elapsed_seconds(run, now: datetime | None = None) -> float | None:
    """Seconds since the run started (to its end when it finished); None before it
    started."""
    if run.started_at is None:
        return None
    end = run.finished_at or now or datetime.now(UTC)
    return max(0.0, (end - run.started_at).total_seconds())


def dev_f1_chart(progress: dict | None) -> None:
    """A small line chart of the dev F1 after each epoch (one line per language and the
    selection score), with the epoch each stage keeps (or its best so far)."""
    frame = dev_f1_frame(progress)
    if frame.empty:
        return
    kept = kept_text(progress)
    st.caption("Dev F1 per epoch (stage 1, then KD)" + (f" · {kept}" if kept else ""))
    st.line_chart(frame, x="epoch", y="F1", color="language", height=180,
                  x_label="epoch (stage 1, then KD)", y_label="dev F1 (%)")


def live_run_panel(store, project: str, kind: str, *, choose: bool = False) -> None:
    """The latest run of ``kind`` (or, with ``choose``, any recent one), refreshed every few
    seconds, with a cancel button while it is queued or running."""

    @st.fragment(run_every=LIVE_SECONDS)
    def panel():
        runs = store.runs(project, kind=kind, limit=20)
        run = runs[0] if runs else None
        if choose and len(runs) > 1:
            ids = [r.id for r in runs]
            labels = {r.id: " · ".join(x for x in (f"run {r.id}", update_text(r)) if x)
                      for r in runs}
            if st.session_state.get(f"pick-{kind}") not in ids:  # followed or gone: newest
                st.session_state[f"pick-{kind}"] = ids[0]
            picked = st.selectbox("Run", ids, key=f"pick-{kind}", format_func=labels.get)
            run = next(r for r in runs if r.id == picked)
        render_run(run, key=kind)
        active = run is not None and run.status in ("queued", "running")
        if active and st.button(f"Cancel run {run.id}", key=f"cancel-{kind}-{run.id}"):
            cancel(store, run.id)

    panel()

