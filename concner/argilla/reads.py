"""Reading a dataset over Argilla's REST API: its records, the answered ones, the pending
ones in an order, its users, the server's clock, and :meth:`RecordReads.pull` (the submitted
answers since a cursor, see :mod:`concner.argilla.cursor`). No ``argilla`` import: the
requests go through :meth:`RecordReads.request`, which
:class:`concner.argilla.client.ArgillaIO` (this class's one subclass) gives, with its
retries.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import httpx

from concner.argilla.cursor import (
    add_pushed,
    full_sync_due,
    load_cursor,
    next_cursor,
    parse_server_time,
    pushed_ids,
    pushed_memo,
    submitted_answers,
)
from concner.argilla.records import PulledAnnotation, PullResult
from concner.argilla.server_json import (
    ASK_ORDER,
    PAGE,
    SEARCH_WINDOW,
    TERMS_MAX,
    answer_tags,
    answered_oldest_first,
    by_sentence_ids,
    pending_sorted_by,
)
from concner.errors import LabelSchemaError
from concner.sentence import Sentence

log = logging.getLogger("concner.argilla")

__all__ = ["RecordReads"]


class RecordReads:
    """The read side of a connection to one Argilla server. A subclass sets ``url``,
    ``stats`` (``{"requests", "records_read"}`` counters), ``clock_lag`` (a timedelta) and
    ``_usernames`` (a dict cache), and gives :meth:`request` and :meth:`dataset_id`."""

    url: str
    stats: dict[str, int]
    clock_lag: timedelta
    _usernames: dict[str, str]

    def request(self, what: str, method: str, path: str, **kw) -> httpx.Response:
        """``method path`` on the server (``what`` names it in errors), with retries;
        raises :class:`~concner.errors.ServiceUnavailable` when it fails."""
        raise NotImplementedError

    def dataset_id(self, name: str) -> str:
        """The Argilla id of dataset ``name``."""
        raise NotImplementedError

    def progress(self, name: str) -> dict:
        """``{"records": n, "submitted": records with at least one submitted answer,
        "answers": {username: submitted answers}}`` of dataset ``name`` (one listing)."""
        records = submitted = 0
        answers: dict[str, int] = {}
        for raw in self.iter_raw_records(name):
            records += 1
            done = [r for r in raw.get("responses") or [] if r["status"] == "submitted"]
            submitted += bool(done)
            for r in done:
                user = self.username(r["user_id"])
                answers[user] = answers.get(user, 0) + 1
        return {"records": records, "submitted": submitted, "answers": dict(sorted(answers.items()))}

    def iter_raw_records(self, name: str) -> Iterator[dict]:
        """Every record of the dataset as the server's JSON (with responses and suggestions,
        including response timestamps, which the SDK's objects do not carry)."""
        ds_id = self.dataset_id(name)
        offset = 0
        while True:
            page = self.request(f"reading records of {name}", "GET",
                                f"/api/v1/datasets/{ds_id}/records",
                                params={"offset": offset, "limit": PAGE,
                                        "include": ["responses", "suggestions"]}).json()["items"]
            self.stats["records_read"] += len(page)
            yield from page
            if len(page) < PAGE:
                return
            offset += len(page)

    def _search(self, name: str, body: dict, offset: int, limit: int,
                include: Sequence[str] = ("responses",)) -> dict:
        ds_id = self.dataset_id(name)
        out = self.request(f"searching {name}", "POST",
                           f"/api/v1/datasets/{ds_id}/records/search",
                           params={"offset": offset, "limit": limit, "include": list(include)},
                           json=body).json()
        self.stats["records_read"] += len(out["items"])
        return out

    def iter_answered_records(self, name: str) -> Iterator[dict]:
        """The records that have any response (submitted, discarded or draft), with their
        responses, oldest record first: what :meth:`pull` reads instead of every record.

        argilla-server 2.8 indexes neither the responses' timestamps nor a response change
        in the record's ``updated_at``, so this is the narrowest server-side filter there
        is. Past :data:`~concner.argilla.server_json.SEARCH_WINDOW` hits it falls back to the
        listing."""
        body = answered_oldest_first()
        offset = 0
        while True:
            page = self._search(name, body, offset, PAGE)
            if offset == 0 and page["total"] > SEARCH_WINDOW:
                yield from (r for r in self.iter_raw_records(name) if r.get("responses"))
                return
            yield from (item["record"] for item in page["items"])
            offset += len(page["items"])
            if len(page["items"]) < PAGE or offset >= page["total"]:
                return

    def records_by_sentence_id(self, name: str, ids: Sequence[str]) -> dict[str, dict]:
        """Sentence id -> the record's JSON (responses, suggestions), for the ids that
        exist; one search per :data:`~concner.argilla.server_json.TERMS_MAX` ids."""
        out: dict[str, dict] = {}
        ids = sorted(set(ids))
        for i in range(0, len(ids), TERMS_MAX):
            chunk = ids[i:i + TERMS_MAX]
            page = self._search(name, by_sentence_ids(chunk), 0, len(chunk),
                                include=("responses", "suggestions"))
            out.update((item["record"]["external_id"], item["record"]) for item in page["items"])
        return out

    def most_uncertain(self, name: str, limit: int = 20) -> list[str]:
        """Sentence ids of records still pending, most uncertain first: the order annotators
        get when they sort by the ``uncertainty`` metadata (served by the search engine)."""
        return self._pending_sorted(name, "uncertainty", "desc", limit)

    def next_to_ask(self, name: str, limit: int = 20) -> list[str]:
        """Sentence ids of records still pending in the active-learning order: what
        annotators get when they sort by the ``ask_order`` metadata, ascending."""
        return self._pending_sorted(name, ASK_ORDER, "asc", limit)

    def _pending_sorted(self, name: str, prop: str, order: str, limit: int) -> list[str]:
        ds_id = self.dataset_id(name)
        items = self.request(f"searching {name}", "POST",
                             f"/api/v1/datasets/{ds_id}/records/search", params={"limit": limit},
                             json=pending_sorted_by(prop, order)).json()["items"]
        return [item["record"]["external_id"] for item in items]

    # -- pull ----------------------------------------------------------------------------
    def username(self, user_id: str) -> str:
        """The username of an Argilla user id (cached; ``user:<id>`` for an unknown id)."""
        if user_id not in self._usernames:
            users = self.request("listing users", "GET", "/api/v1/users").json()["items"]
            self._usernames.update({u["id"]: u["username"] for u in users})
        return self._usernames.get(user_id, f"user:{user_id}")

    def _server_now(self) -> datetime:
        """The server's clock (its ``Date`` header, whole seconds, rounded down)."""
        first = self.request(f"reading the clock of {self.url}", "GET", "/api/v1/version")
        return email.utils.parsedate_to_datetime(first.headers["date"]).astimezone(UTC)

    def _activity(self, name: str) -> str | None:
        """The dataset's ``last_activity_at``: argilla-server 2.8 sets it to its clock in
        the same transaction as every response created, changed or deleted (not when
        records are pushed), so an unchanged value means no answer changed."""
        ds_id = self.dataset_id(name)
        return self.request(f"reading dataset {name}", "GET",
                            f"/api/v1/datasets/{ds_id}").json().get("last_activity_at")

    # the cursor, read without a server call (see concner.argilla.cursor)
    full_sync_due = staticmethod(full_sync_due)
    pushed_memo = staticmethod(pushed_memo)
    pushed_ids = staticmethod(pushed_ids)
    add_pushed = staticmethod(add_pushed)

    def pull(self, name: str, sentences: Mapping[str, Sentence] | Callable[[list[str]], Mapping[str, Sentence]],
             since: str | None = None, *, full: bool = False,
             pushed: Mapping[str, str] | None = None) -> PullResult:
        """Submitted answers newer than cursor ``since`` (all of them when ``None``).

        ``sentences`` maps sentence ids to the stored :class:`Sentence` (or is a function
        ``ids -> mapping``): spans become IOB2 tags over its token offsets, character-level
        selections snapped to whole tokens and counted. Answers that cannot be converted
        (unknown sentence, changed text, a span on whitespace only) are reported in
        ``problems``. All or nothing: on failure the cursor does not move, so nothing is lost.

        What is read: nothing but the dataset when no answer changed since the cursor
        (its ``last_activity_at``, see :meth:`_activity`); else the records that have
        answers (:meth:`iter_answered_records`); every record when ``full``. The cursor
        (opaque JSON) holds the server-clock time ``t`` up to which every answer was taken,
        ``clock_lag`` behind the server's clock when the pull started (server times only,
        so the worker's clock does not matter), the keys (response id @ updated_at) of the
        answers taken after ``t`` (skipped next time: each version is taken once; an answer
        changed again has a new ``updated_at`` and is taken again), and the activity mark
        once it is older than ``clock_lag`` (an answer committed just before the mark was
        read may not be searchable yet, so a fresh mark is checked again next time, and
        ``recheck_after`` says when that next time can see it).
        ``pushed`` (or the one in ``since``) is kept in it for :meth:`pushed_memo`.
        """
        state = load_cursor(since)
        after = parse_server_time(state["t"]) if state.get("t") else None
        seen = set(state.get("seen", []))
        ds_id = self.dataset_id(name)
        server_now = self._server_now()
        activity = self._activity(name)
        keep = {"ds": ds_id, "full_at": server_now.isoformat() if full else state.get("full_at"),
                "pushed": dict(pushed if pushed is not None else state.get("pushed") or {})}
        result = PullResult(name)
        if (not full and since and state.get("ds") == ds_id and activity is not None
                and state.get("activity") == activity):
            result.cursor = json.dumps({**state, **keep})
            return result
        records = self.iter_raw_records(name) if full else self.iter_answered_records(name)
        found = submitted_answers(records, after, seen)
        # an answer changed while the pages were read may have moved a record between pages
        # (out of the answered set, say): then the time cursor stays where it was
        moved = self._activity(name) != activity
        lookup = sentences if callable(sentences) else (lambda ids: {i: sentences[i] for i in ids if i in sentences})
        known = lookup(sorted({raw["external_id"] for raw, _, _ in found}))
        for raw, resp, when in sorted(found, key=lambda f: f[2]):
            sid, author = raw["external_id"], self.username(resp["user_id"])
            sent = known.get(sid)
            try:
                tags, snapped = answer_tags(raw, resp, sent)
            except LabelSchemaError as exc:
                result.problems.append((sid, author, str(exc)))
                log.warning("Argilla answer of %s for %s in %s not used: %s", author, sid, name, exc)
                continue
            result.annotations.append(PulledAnnotation(sid, sent.lang, tags, author, when, snapped, name))
        result.cursor = next_cursor(found, after, seen, moved=moved, server_now=server_now,
                                    clock_lag=self.clock_lag, activity=activity, keep=keep)
        if moved or (activity is not None
                     and server_now - parse_server_time(activity) <= self.clock_lag):
            result.recheck_after = self.clock_lag.total_seconds() + 1.0
        return result

    def record_ids(self, name: str) -> dict[str, str]:
        """Sentence id -> Argilla record id (an owner's or admin's connection)."""
        return {r["external_id"]: r["id"] for r in self.iter_raw_records(name)}
