"""The sync cursor of :meth:`concner.argilla.client.ArgillaIO.pull` (opaque JSON, kept by
the caller): reading it, the memo of what was pushed, when a full read is due, and the
cursor a pull leaves behind. No server calls and no ``argilla`` import.

A cursor holds ``t`` (server-clock time up to which every answer was taken), ``seen`` (the
keys ``response id @ updated_at`` of the answers taken after ``t``), ``activity`` (the
dataset's settled ``last_activity_at``), ``ds`` (the dataset id), ``full_at`` (the last
full read) and ``pushed`` (sentence id -> digest of what was pushed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

__all__ = [
    "WATERMARK_LAG",
    "FoundAnswer",
    "add_pushed",
    "full_sync_due",
    "load_cursor",
    "next_cursor",
    "parse_server_time",
    "pushed_ids",
    "pushed_memo",
    "submitted_answers",
]

#: the cursor keeps responses this close to the server's clock at pull start (see pull)
WATERMARK_LAG = timedelta(seconds=2)

#: ``(record JSON, response JSON, the response's updated_at)``: one answer a pull takes
FoundAnswer = tuple[dict, dict, datetime]


def parse_server_time(value: str) -> datetime:
    """An ISO time from the server, in UTC (a time without a zone is UTC)."""
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def load_cursor(cursor: str | None) -> dict:
    """The state in a cursor :meth:`ArgillaIO.pull` made; ``{}`` for none or another's."""
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        state = {}
    state = state if isinstance(state, dict) else {}
    state.setdefault("t", None)
    state.setdefault("seen", [])
    return state


def full_sync_due(cursor: str | None, every_s: float, now: datetime | None = None) -> bool:
    """Whether the sync from ``cursor`` should read every record (the safety net for
    what the incremental path cannot see, e.g. records deleted in Argilla): no cursor,
    an old one without a full read, or the last full read ``every_s`` seconds ago."""
    state = load_cursor(cursor)
    if not state.get("full_at"):
        return True
    age = (now or datetime.now(UTC)) - parse_server_time(state["full_at"])
    return age.total_seconds() >= every_s


def pushed_memo(cursor: str | None, dataset_id: str) -> dict[str, str]:
    """What :meth:`ArgillaIO.push` sent to dataset ``dataset_id``, as kept in ``cursor``
    (empty for another dataset of that name, e.g. one deleted and made again)."""
    state = load_cursor(cursor)
    return dict(state.get("pushed") or {}) if state.get("ds") == dataset_id else {}


def pushed_ids(cursor: str | None) -> set[str]:
    """The sentence ids ``cursor``'s memo says are in the dataset and unanswered (what
    the app marks "in Argilla"; no server call)."""
    return set(load_cursor(cursor).get("pushed") or {})


def add_pushed(cursor: str | None, dataset_id: str, pushed: Mapping[str, str]) -> str:
    """``cursor`` with ``pushed`` (sentence id -> what :meth:`ArgillaIO.push` sent, its
    memo) added, for a push outside the sync (the Review page's batch). A cursor of another
    dataset, or none, keeps only the dataset id: the next sync then reads every record."""
    state = load_cursor(cursor)
    if state.get("ds") != dataset_id:
        state = {"t": None, "seen": [], "ds": dataset_id}
    state["pushed"] = {**(state.get("pushed") or {}), **pushed}
    return json.dumps(state)


def submitted_answers(records: Iterable[dict], after: datetime | None,
                      seen: set[str]) -> list[FoundAnswer]:
    """The submitted responses of ``records`` (the server's JSON) a pull has not taken yet:
    changed after ``after`` and not among the ``seen`` keys."""
    found: list[FoundAnswer] = []
    for raw in records:
        for resp in raw.get("responses") or []:
            when = parse_server_time(resp["updated_at"])
            key = f"{resp['id']}@{resp['updated_at']}"
            if resp["status"] != "submitted" or (after is not None and when <= after) or key in seen:
                continue
            found.append((raw, resp, when))
    return found


def next_cursor(found: list[FoundAnswer], after: datetime | None, seen: set[str], *,
                moved: bool, server_now: datetime, clock_lag: timedelta,
                activity: str | None, keep: Mapping) -> str:
    """The cursor a pull leaves: ``t`` moves to ``clock_lag`` before ``server_now`` (it
    stays at ``after`` when an answer changed while the pages were read, ``moved``), the
    keys of the answers after ``t`` are kept to be skipped next time, and the activity
    mark is kept once it is older than ``clock_lag``; ``keep`` (dataset id, full read,
    pushed memo) is carried over."""
    # every answer stored at or before the watermark was visible to this listing, so it
    # is accounted for; keep the keys of later ones, which the next pull must skip
    watermark = server_now - clock_lag
    t = after if moved else (max(watermark, after) if after else watermark)
    newer = sorted({f"{r['id']}@{r['updated_at']}" for _, r, w in found if t is None or w > t}
                   | {k for k in seen if t is None or parse_server_time(k.split("@", 1)[1]) > t})
    settled = (activity if activity is not None and not moved
               and server_now - parse_server_time(activity) > clock_lag else None)
    return json.dumps({"t": t.isoformat() if t else None, "seen": newer,
                       "activity": settled, **keep})
