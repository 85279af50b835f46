"""Argilla as the pages see it: reachability, the project's datasets with progress per
annotator, and sending a batch of sentences for correction.

Everything goes through :mod:`concner.argilla.client` (the only module that imports
``argilla``). The page-facing connection makes no retries and uses a short timeout, so a
down server costs a page a few seconds at most; the API key comes from the configuration,
the environment or Streamlit secrets (:func:`concner.argilla.client.resolve_api_key`) and is
never shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from concner.errors import ConcnerError

#: seconds a page waits for Argilla before reporting it unreachable
PAGE_TIMEOUT_S = 5


@dataclass
class ArgillaStatus:
    reachable: bool
    message: str
    progress: pd.DataFrame | None = None


@dataclass
class SendResult:
    dataset: str
    url: str
    n_records: int


def connect(services):
    """A no-retry, short-timeout connection for pages (raises ConfigError without a key)."""
    from concner.argilla.client import ArgillaIO, resolve_api_key

    return ArgillaIO(services.argilla_url, resolve_api_key(services),
                     workspace=services.argilla_workspace, retries=0,
                     batch_size=services.argilla_batch_size, timeout_s=PAGE_TIMEOUT_S)


def project_datasets(project) -> list[tuple[str, str, str]]:
    """``(role, lang, dataset name)`` of every dataset the project may have in Argilla."""
    from concner.argilla.client import dataset_name

    out = [("source", project.source_lang, dataset_name(project.name, "source",
                                                        project.source_lang))]
    out += [("target", lang, dataset_name(project.name, "target", lang))
            for lang in project.target_langs]
    return out


def progress_rows(io, name: str) -> dict:
    """One table row: records, submitted records and submitted answers per annotator
    (``by <username>`` columns) of one dataset (:meth:`ArgillaIO.progress`)."""
    progress = io.progress(name)
    row = {"dataset": name, "records": progress["records"], "submitted": progress["submitted"]}
    row.update({f"by {user}": n for user, n in progress["answers"].items()})
    return row


def argilla_status(config, project) -> ArgillaStatus:
    """Reachability of the configured Argilla and, for ``project`` (a Project row or None),
    progress of its datasets that exist."""
    services = config.services
    try:
        io = connect(services)
        user = io.check()
    except ConcnerError as exc:
        return ArgillaStatus(False, str(exc))
    if project is None:
        return ArgillaStatus(True, f"{services.argilla_url} as {user}")
    rows = []
    try:
        for _role, _lang, name in project_datasets(project):
            if not io.dataset_exists(name):
                continue
            rows.append(progress_rows(io, name))
    except ConcnerError as exc:
        return ArgillaStatus(False, str(exc))
    frame = pd.DataFrame(rows).fillna(0) if rows else None
    return ArgillaStatus(True, f"{services.argilla_url} as {user} · {len(rows)} dataset(s) "
                               "of this project", frame)


def send_batch(config, store, project, rows, role: str = "target") -> SendResult:
    """Push review rows (sentence + the spans, uncertainty and active-learning order of the
    model version that predicted it) to the project's ``role`` datasets (``target``:
    correction, ``source``: annotation; one per language, created on first use); the
    suggestion's ``agent`` is that version (``v3``). Returns the last dataset's name and UI
    address and the number of records sent or already there."""
    from concner.argilla.client import SpanSuggestion

    if not rows:
        raise ConcnerError("nothing to send: choose at least one sentence")
    services = config.services
    io = connect(services)
    groups: dict[tuple[str, int | None], list] = {}
    for r in rows:
        groups.setdefault((r.sentence.lang, r.model_version), []).append(r)
    from concner.argilla.sync import record_pushed

    labels = list(project.label_schema["entity_types"])
    total, name = 0, ""
    for (lang, version), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        name = io.ensure_dataset(project.name, role, lang, labels,
                                 min_submitted=services.argilla_min_submitted)
        memo: dict[str, str] = {}  # what was sent: the sync's memo learns it (in Argilla)
        report = io.push(name, [r.sentence for r in group],
                         {r.sentence.id: SpanSuggestion(r.spans, r.uncertainty, r.al_rank)
                          for r in group},
                         model_version=None if version is None else f"v{version}", memo=memo)
        record_pushed(store, project.name, name, io.dataset_id(name), memo)
        total += report.created + report.updated + report.unchanged
    return SendResult(name, io.ask_order_url(name), total)


def ask_order_links(config, project) -> list[tuple[str, str]]:
    """``(dataset, address of its annotation page sorted by ask order)`` for each of the
    project's datasets that exists in Argilla (raises ConcnerError when unreachable)."""
    io = connect(config.services)
    return [(name, io.ask_order_url(name)) for _role, _lang, name in project_datasets(project)
            if io.dataset_exists(name)]


def in_argilla(store, project) -> set[str]:
    """Sentence ids of the project's records in Argilla that nobody has answered yet, as
    the sync (and the send button) last saw them: from the store, no server call."""
    from concner.argilla.client import ArgillaIO

    out: set[str] = set()
    for _role, _lang, name in project_datasets(project):
        state = store.get_sync_state(project.name, name)
        out |= ArgillaIO.pushed_ids(state.cursor if state else None)
    return out


def sync_states(store, project) -> pd.DataFrame:
    """Last sync of each of the project's Argilla datasets (status, message, time)."""
    rows = []
    for role, lang, name in project_datasets(project):
        state = store.get_sync_state(project.name, name)
        rows.append({"dataset": name, "role": role, "lang": lang,
                     "status": state.status if state else "never",
                     "last sync": state.last_sync_at if state else None,
                     "message": (state.message or "") if state else ""})
    return pd.DataFrame(rows)
