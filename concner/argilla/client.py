"""Argilla 2.x: datasets, pushing records with model suggestions, pulling annotations.

The only module of the project that imports ``argilla``. Per project there is one dataset
for source annotation and one per target language for correcting the model (see
:func:`dataset_name`). Each record is one :class:`~concner.sentence.Sentence`; its Argilla
``id`` is the sentence id, so pushing is an idempotent upsert. Span offsets are Python code
points on both sides.

Failures: an unreachable server, a timeout or a 5xx answer is retried with exponential
backoff (``retries`` times); then, and on any other error answer, a
:class:`~concner.errors.ServiceUnavailable` says what failed and what to do. The API key
never appears in messages or logs.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import argilla as rg
import httpx
from argilla._exceptions import ArgillaAPIError, ArgillaCredentialsError, ArgillaError

from concner.argilla.records import (  # noqa: F401 (re-exported)
    ASK_ORDER_LINK,
    LABEL_HELP,
    ROLES,
    PulledAnnotation,
    PullResult,
    PushReport,
    SpanSuggestion,
    dataset_name,
    guidelines_text,
    resolve_api_key,
)
from concner.config import ServicesConfig
from concner.errors import ConfigError, LabelSchemaError, ServiceUnavailable
from concner.labels import Span, spans_to_tags
from concner.sentence import Sentence

log = logging.getLogger("concner.argilla")

QUESTION = "entities"
FIELD = "text"
#: record metadata: the active-learning order of the model that made the suggestion
ASK_ORDER = "ask_order"
_PAGE = 1000  # the server's largest page for listing records
#: the search engine pages with offset + limit; past this many hits the listing is used
_SEARCH_WINDOW = 9000
#: the most values one terms filter takes (argilla-server 2.8)
_TERMS_MAX = 250
#: push: at most this many changed records are looked up by id; more: one full listing
_BY_ID_MAX = 2000
#: any response, so a discarded or reworked answer is seen too ("pending" = none)
_ANSWERED = {"type": "terms", "values": ["submitted", "discarded", "draft"],
             "scope": {"entity": "response", "property": "status"}}
_MAX_BACKOFF_S = 30.0
#: the cursor keeps responses this close to the server's clock at pull start (see pull)
_WATERMARK_LAG = timedelta(seconds=2)

def _parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _load_cursor(cursor: str | None) -> dict:
    """The state in a cursor :meth:`ArgillaIO.pull` made; ``{}`` for none or another's."""
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        state = {}
    state = state if isinstance(state, dict) else {}
    state.setdefault("t", None)
    state.setdefault("seen", [])
    return state


def _digest(record: rg.Record) -> str:
    """What a pushed record looks like (text, metadata, suggestion), in 12 hex digits."""
    sug = [[s.value, s.agent, s.score] for s in record.suggestions]
    blob = json.dumps([record.fields[FIELD], record.metadata.to_dict(), sug], sort_keys=True,
                      ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=6).hexdigest()


def _ask_order_property() -> rg.IntegerMetadataProperty:
    return rg.IntegerMetadataProperty(name=ASK_ORDER, title="Ask order (1 = first)")


def _suggestion(pred: SpanSuggestion, agent: str) -> rg.Suggestion:
    value = [{"start": s.start, "end": s.end, "label": s.label} for s in pred.spans]
    scores = [s.score for s in pred.spans]
    score = [float(x) for x in scores] if value and None not in scores else None
    return rg.Suggestion(QUESTION, value, score=score, agent=agent, type="model")


class ArgillaIO:
    """A connection to one Argilla server (URL + API key) with retries.

    ``ArgillaIO.from_config(config.services)`` reads the key as :func:`resolve_api_key`
    says. Nothing is contacted until the first call.
    """

    def __init__(self, url: str, api_key: str, *, workspace: str = "argilla", retries: int = 4,
                 backoff_s: float = 1.0, batch_size: int = 200, timeout_s: int = 60,
                 sleep: Callable[[float], None] = time.sleep):
        if not api_key:
            raise ConfigError("an Argilla API key is needed (see resolve_api_key)")
        self.url = url.rstrip("/")
        self._key = api_key
        self.workspace = workspace
        self.retries, self.backoff_s, self.batch_size = retries, backoff_s, batch_size
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._client: rg.Argilla | None = None
        self._datasets: dict[str, rg.Dataset] = {}
        self._usernames: dict[str, str] = {}
        #: what this connection cost: HTTP requests sent, records read from the server
        self.stats = {"requests": 0, "records_read": 0}
        #: the time cursor stays this far behind the server's clock (see :meth:`pull`)
        self.clock_lag = _WATERMARK_LAG

    def __repr__(self) -> str:
        return f"ArgillaIO({self.url!r}, workspace={self.workspace!r})"

    @classmethod
    def from_config(cls, services: ServicesConfig, **kw) -> ArgillaIO:
        return cls(services.argilla_url, resolve_api_key(services), workspace=services.argilla_workspace,
                   retries=services.argilla_retries, backoff_s=services.argilla_backoff_s,
                   batch_size=services.argilla_batch_size, **kw)

    # -- transport -----------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _call(self, what: str, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` with retries on transient failures; errors become
        :class:`ServiceUnavailable` (message without the API key)."""
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except (httpx.TransportError, ArgillaAPIError, ArgillaError) as exc:
                status = getattr(exc, "status_code", None)
                transient = isinstance(exc, httpx.TransportError) or (status or 0) >= 500
                detail = self._redact(str(exc))[:500]
                if status == 401 or isinstance(exc, ArgillaCredentialsError):
                    raise ServiceUnavailable(
                        f"Argilla at {self.url} rejected the API key while {what}; set "
                        "ARGILLA_API_KEY to a valid key (owner or admin)") from None
                if not transient or attempt == self.retries:
                    tries = f" after {attempt + 1} attempts" if transient else ""
                    raise ServiceUnavailable(
                        f"Argilla at {self.url} failed while {what}{tries}: "
                        f"{type(exc).__name__}: {detail}. Is the server up (`concner argilla "
                        "status`) and services.argilla_url right? Nothing was lost: the next "
                        "sync resumes from the last saved point") from None
                delay = min(self.backoff_s * 2 ** attempt, _MAX_BACKOFF_S)
                log.warning("Argilla %s failed (%s); retry %d/%d in %.1fs", what,
                            type(exc).__name__, attempt + 1, self.retries, delay)
                self._sleep(delay)

    @property
    def client(self) -> rg.Argilla:
        if self._client is None:
            # the SDK's own transport retries are off: _call does bounded backoff instead
            # (the SDK checks the key when it connects)
            self.stats["requests"] += 1  # the SDK checks the key when it connects
            self._client = self._call("connecting", rg.Argilla, api_url=self.url,
                                      api_key=self._key, timeout=self.timeout_s, retries=0)
            http = self._client.api.http_client
            hooks = http.event_hooks
            hooks["request"] = [*hooks.get("request", []), self._count_request]
            http.event_hooks = hooks
        return self._client

    def _count_request(self, _request: httpx.Request) -> None:
        self.stats["requests"] += 1

    def check(self) -> str:
        """Contact the server; returns the username the API key belongs to."""
        return self._call("checking the connection", lambda: self.client.api.users.get_me().username)

    def _http(self, method: str, path: str, **kw) -> httpx.Response:
        resp = self.client.api.http_client.request(method, path, **kw)
        if resp.status_code >= 400:
            cls = ArgillaAPIError
            raise cls(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:300]}",
                      status_code=resp.status_code)
        return resp

    # -- datasets ------------------------------------------------------------------------
    def ensure_dataset(self, project: str, role: str, lang: str, labels: Sequence[str], *,
                       min_submitted: int = 1, guidelines: str | None = None) -> str:
        """Create the dataset if missing (idempotent); returns its name.

        Raises :class:`LabelSchemaError` when it exists with other labels."""
        name = dataset_name(project, role, lang)
        ds = self._find(name)
        if ds is not None:
            have = list(ds.settings.questions[QUESTION].labels)
            if have != list(labels):
                raise LabelSchemaError(
                    f"Argilla dataset {name} has labels {have}, the project has {list(labels)}; "
                    "delete the dataset in Argilla (its answers are already synced) or rename the project")
            if ds.settings.metadata[ASK_ORDER] is None:  # made before the property existed
                prop = ds.settings.metadata.add(_ask_order_property())
                prop.dataset = ds
                self._call(f"adding the {ASK_ORDER} metadata to {name}", prop.create)
            self._datasets[name] = ds
            return name
        settings = rg.Settings(
            fields=[rg.TextField(name=FIELD, title="Sentence", use_markdown=False)],
            questions=[rg.SpanQuestion(name=QUESTION, field=FIELD, labels=list(labels),
                                       allow_overlapping=False, title="Named entities")],
            metadata=[rg.TermsMetadataProperty(name="lang", title="Language"),
                      rg.TermsMetadataProperty(name="sentence_id", title="Sentence id"),
                      rg.FloatMetadataProperty(name="uncertainty", title="Model uncertainty"),
                      rg.TermsMetadataProperty(name="model_version", title="Model version"),
                      _ask_order_property()],
            guidelines=guidelines or guidelines_text(labels, role=role),
            distribution=rg.TaskDistribution(min_submitted=min_submitted),
        )
        ds = rg.Dataset(name=name, workspace=self.workspace, settings=settings, client=self.client)
        self._datasets[name] = self._call(f"creating dataset {name}", ds.create)
        return name

    def _find(self, name: str) -> rg.Dataset | None:
        with warnings.catch_warnings():  # the SDK warns when a dataset does not exist
            warnings.simplefilter("ignore", UserWarning)
            return self._call(f"looking up dataset {name}", self.client.datasets, name=name,
                              workspace=self.workspace)

    def _dataset(self, name: str) -> rg.Dataset:
        if name not in self._datasets:
            ds = self._find(name)
            if ds is None:
                raise ServiceUnavailable(f"Argilla has no dataset {name} in workspace "
                                         f"{self.workspace}; create it with ensure_dataset first")
            self._datasets[name] = ds
        return self._datasets[name]

    def dataset_exists(self, name: str) -> bool:
        return self._find(name) is not None

    def dataset_id(self, name: str) -> str:
        """The dataset's Argilla id (its UI page is :meth:`dataset_url`)."""
        return str(self._dataset(name).id)

    def dataset_url(self, name: str) -> str:
        """The address of the dataset's annotation page in the Argilla UI."""
        return f"{self.url}/dataset/{self.dataset_id(name)}/annotation-mode"

    def ask_order_url(self, name: str) -> str:
        """:meth:`dataset_url` sorted by ``ask_order`` ascending. The Argilla 2.8 UI takes
        its sort from the ``sort`` query parameter (``<entity>.<name>.<order>``, read from
        its frontend bundle); without one, it gives each annotator the pending records in
        a shuffled order of their own (the server's per-user random score), so the push
        order cannot make the default view right."""
        return f"{self.dataset_url(name)}?sort=metadata.{ASK_ORDER}.asc"

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
        ds_id = self._dataset(name).id
        offset = 0
        while True:
            page = self._call(f"reading records of {name}", self._http, "GET",
                              f"/api/v1/datasets/{ds_id}/records",
                              params={"offset": offset, "limit": _PAGE,
                                      "include": ["responses", "suggestions"]}).json()["items"]
            self.stats["records_read"] += len(page)
            yield from page
            if len(page) < _PAGE:
                return
            offset += len(page)

    def _search(self, name: str, body: dict, offset: int, limit: int,
                include: Sequence[str] = ("responses",)) -> dict:
        ds_id = self._dataset(name).id
        out = self._call(f"searching {name}", self._http, "POST",
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
        is. Past :data:`_SEARCH_WINDOW` hits it falls back to the listing."""
        body = {"filters": {"and": [_ANSWERED]},
                "sort": [{"scope": {"entity": "record", "property": "inserted_at"},
                          "order": "asc"}]}
        offset = 0
        while True:
            page = self._search(name, body, offset, _PAGE)
            if offset == 0 and page["total"] > _SEARCH_WINDOW:
                yield from (r for r in self.iter_raw_records(name) if r.get("responses"))
                return
            yield from (item["record"] for item in page["items"])
            offset += len(page["items"])
            if len(page["items"]) < _PAGE or offset >= page["total"]:
                return

    def records_by_sentence_id(self, name: str, ids: Sequence[str]) -> dict[str, dict]:
        """Sentence id -> the record's JSON (responses, suggestions), for the ids that
        exist; one search per :data:`_TERMS_MAX` ids."""
        out: dict[str, dict] = {}
        ids = sorted(set(ids))
        for i in range(0, len(ids), _TERMS_MAX):
            chunk = ids[i:i + _TERMS_MAX]
            body = {"filters": {"and": [{"type": "terms", "values": chunk, "scope": {
                "entity": "record", "property": "external_id"}}]}}
            page = self._search(name, body, 0, len(chunk), include=("responses", "suggestions"))
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
        ds_id = self._dataset(name).id
        body = {"filters": {"and": [{"type": "terms", "values": ["pending"],
                                     "scope": {"entity": "record", "property": "status"}}]},
                "sort": [{"scope": {"entity": "metadata", "metadata_property": prop},
                          "order": order}]}
        items = self._call(f"searching {name}", self._http, "POST",
                           f"/api/v1/datasets/{ds_id}/records/search",
                           params={"limit": limit}, json=body).json()["items"]
        return [item["record"]["external_id"] for item in items]

    # -- push ----------------------------------------------------------------------------
    def push(self, name: str, sentences: Sequence[Sentence],
             predictions: Mapping[str, SpanSuggestion] | None = None, *, model_version: str | None = None,
             only_existing: bool = False, max_new: int | None = None,
             on_batch: Callable[[list[str]], None] | None = None,
             memo: dict[str, str] | None = None) -> PushReport:
        """Upsert one record per sentence (id = sentence id), in batches.

        ``predictions[sentence.id]`` becomes a span suggestion (``agent`` = model version,
        per-span scores). Records with a submitted answer are left alone; records whose
        text, metadata and suggestion already match are not sent again. ``on_batch`` gets
        the sentence ids of each batch once the server stored it (so a caller can record
        progress; pushing again is always safe). ``max_new`` caps how many records are
        created (in the order given); existing records are always brought up to date.

        ``memo`` (sentence id -> what was pushed, kept by the caller with the sync cursor):
        records that match it are not read again (a record someone answered since is left
        alone either way); only the others are looked up, by id, or by one full listing
        when there are more than :data:`_BY_ID_MAX`. Updated in place. Without it every
        record of the dataset is read."""
        predictions = predictions or {}
        report = PushReport(name)
        planned = []
        for sent in sentences:
            record = self._record(sent, predictions.get(sent.id), model_version)
            digest = _digest(record)
            if memo is not None and memo.get(sent.id) == digest:
                report.unchanged += 1
                continue
            planned.append((sent, record, digest))
        if not planned:
            return report
        if memo is None or len(planned) > _BY_ID_MAX:
            existing = {r["external_id"]: r for r in self.iter_raw_records(name)}
        else:
            existing = self.records_by_sentence_id(name, [s.id for s, _, _ in planned])
        todo: list[rg.Record] = []
        digests: dict[str, str] = {}
        for sent, record, digest in planned:
            raw = existing.get(sent.id)
            if raw is None and (only_existing or (max_new is not None and report.created >= max_new)):
                continue
            if raw is not None and any(x["status"] == "submitted" for x in raw.get("responses") or []):
                report.skipped_answered += 1
                if memo is not None:
                    memo.pop(sent.id, None)
                continue
            digests[sent.id] = digest
            if raw is not None and self._same(raw, record):
                report.unchanged += 1
                continue
            if raw is None:
                report.created += 1
            else:
                report.updated += 1
            todo.append(record)
        if memo is not None:  # already right; the sent ones once their batch is stored
            sending = {str(r.id) for r in todo}
            memo.update((sid, d) for sid, d in digests.items() if sid not in sending)
        ds = self._dataset(name)
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i:i + self.batch_size]
            self._call(f"pushing records {i}-{i + len(batch)} to {name}", ds.records.log, batch,
                       batch_size=len(batch))
            if memo is not None:
                memo.update((str(r.id), digests[str(r.id)]) for r in batch)
            if on_batch is not None:
                on_batch([str(r.id) for r in batch])
        return report

    def refresh_suggestions(self, name: str, sentences: Sequence[Sentence],
                            predictions: Mapping[str, SpanSuggestion], *, model_version: str) -> PushReport:
        """After a promotion: new suggestions on existing records nobody has answered yet;
        answered records keep what the annotator saw. No records are created."""
        return self.push(name, sentences, predictions, model_version=model_version,
                         only_existing=True)

    @staticmethod
    def _record(sent: Sentence, pred: SpanSuggestion | None, model_version: str | None) -> rg.Record:
        meta: dict = {"lang": sent.lang, "sentence_id": sent.id}
        if model_version is not None and pred is not None:
            meta["model_version"] = str(model_version)
        if pred is not None and pred.uncertainty is not None:
            meta["uncertainty"] = float(pred.uncertainty)
        if pred is not None and pred.ask_order is not None:
            meta[ASK_ORDER] = int(pred.ask_order)
        suggestions = [] if pred is None else [_suggestion(pred, str(model_version or "model"))]
        return rg.Record(id=sent.id, fields={FIELD: sent.text}, metadata=meta,
                         suggestions=suggestions)

    @staticmethod
    def _same(raw: dict, record: rg.Record) -> bool:
        if raw["fields"].get(FIELD) != record.fields[FIELD]:
            return False
        if (raw.get("metadata") or {}) != record.metadata.to_dict():
            return False
        old = {s.get("question_name") or QUESTION: s for s in raw.get("suggestions") or []}
        new = list(record.suggestions)
        if not new:
            return not old
        sug = old.get(QUESTION)
        return (sug is not None and sug["value"] == new[0].value and sug.get("agent") == new[0].agent
                and sug.get("score") == new[0].score)

    # -- pull ----------------------------------------------------------------------------
    def username(self, user_id: str) -> str:
        """The username of an Argilla user id (cached; ``user:<id>`` for an unknown id)."""
        if user_id not in self._usernames:
            users = self._call("listing users", self._http, "GET", "/api/v1/users").json()["items"]
            self._usernames.update({u["id"]: u["username"] for u in users})
        return self._usernames.get(user_id, f"user:{user_id}")

    def _server_now(self) -> datetime:
        """The server's clock (its ``Date`` header, whole seconds, rounded down)."""
        first = self._call(f"reading the clock of {self.url}", self._http, "GET", "/api/v1/version")
        return email.utils.parsedate_to_datetime(first.headers["date"]).astimezone(UTC)

    def _activity(self, name: str) -> str | None:
        """The dataset's ``last_activity_at``: argilla-server 2.8 sets it to its clock in
        the same transaction as every response created, changed or deleted (not when
        records are pushed), so an unchanged value means no answer changed."""
        ds_id = self._dataset(name).id
        return self._call(f"reading dataset {name}", self._http, "GET",
                          f"/api/v1/datasets/{ds_id}").json().get("last_activity_at")

    @staticmethod
    def full_sync_due(cursor: str | None, every_s: float, now: datetime | None = None) -> bool:
        """Whether the sync from ``cursor`` should read every record (the safety net for
        what the incremental path cannot see, e.g. records deleted in Argilla): no cursor,
        an old one without a full read, or the last full read ``every_s`` seconds ago."""
        state = _load_cursor(cursor)
        if not state.get("full_at"):
            return True
        age = (now or datetime.now(UTC)) - _parse_time(state["full_at"])
        return age.total_seconds() >= every_s

    @staticmethod
    def pushed_memo(cursor: str | None, dataset_id: str) -> dict[str, str]:
        """What :meth:`push` sent to dataset ``dataset_id``, as kept in ``cursor`` (empty
        for another dataset of that name, e.g. one deleted and made again)."""
        state = _load_cursor(cursor)
        return dict(state.get("pushed") or {}) if state.get("ds") == dataset_id else {}

    @staticmethod
    def pushed_ids(cursor: str | None) -> set[str]:
        """The sentence ids ``cursor``'s memo says are in the dataset and unanswered (what
        the app marks "in Argilla"; no server call)."""
        return set(_load_cursor(cursor).get("pushed") or {})

    @staticmethod
    def add_pushed(cursor: str | None, dataset_id: str, pushed: Mapping[str, str]) -> str:
        """``cursor`` with ``pushed`` (sentence id -> what :meth:`push` sent, its memo) added,
        for a push outside the sync (the Review page's batch). A cursor of another dataset,
        or none, keeps only the dataset id: the next sync then reads every record."""
        state = _load_cursor(cursor)
        if state.get("ds") != dataset_id:
            state = {"t": None, "seen": [], "ds": dataset_id}
        state["pushed"] = {**(state.get("pushed") or {}), **pushed}
        return json.dumps(state)

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
        read may not be searchable yet, so a fresh mark is checked again next time).
        ``pushed`` (or the one in ``since``) is kept in it for :meth:`pushed_memo`.
        """
        state = _load_cursor(since)
        after = _parse_time(state["t"]) if state.get("t") else None
        seen = set(state.get("seen", []))
        ds_id = str(self._dataset(name).id)
        server_now = self._server_now()
        activity = self._activity(name)
        keep = {"ds": ds_id, "full_at": server_now.isoformat() if full else state.get("full_at"),
                "pushed": dict(pushed if pushed is not None else state.get("pushed") or {})}
        result = PullResult(name)
        if (not full and since and state.get("ds") == ds_id and activity is not None
                and state.get("activity") == activity):
            result.cursor = json.dumps({**state, **keep})
            return result
        found: list[tuple[dict, dict, datetime]] = []
        records = self.iter_raw_records(name) if full else self.iter_answered_records(name)
        for raw in records:
            for resp in raw.get("responses") or []:
                when = _parse_time(resp["updated_at"])
                key = f"{resp['id']}@{resp['updated_at']}"
                if resp["status"] != "submitted" or (after is not None and when <= after) or key in seen:
                    continue
                found.append((raw, resp, when))
        # an answer changed while the pages were read may have moved a record between pages
        # (out of the answered set, say): then the time cursor stays where it was
        moved = self._activity(name) != activity
        lookup = sentences if callable(sentences) else (lambda ids: {i: sentences[i] for i in ids if i in sentences})
        known = lookup(sorted({raw["external_id"] for raw, _, _ in found}))
        for raw, resp, when in sorted(found, key=lambda f: f[2]):
            sid, author = raw["external_id"], self.username(resp["user_id"])
            sent = known.get(sid)
            try:
                if sent is None:
                    raise LabelSchemaError(f"the store has no sentence {sid!r}")
                if sent.text != raw["fields"].get(FIELD):
                    raise LabelSchemaError("the record text differs from the stored sentence")
                value = ((resp.get("values") or {}).get(QUESTION) or {}).get("value") or []
                spans = [Span(int(v["start"]), int(v["end"]), v["label"]) for v in value]
                tags, snapped = spans_to_tags(spans, sent.offsets, snap=True)
            except LabelSchemaError as exc:
                result.problems.append((sid, author, str(exc)))
                log.warning("Argilla answer of %s for %s in %s not used: %s", author, sid, name, exc)
                continue
            result.annotations.append(PulledAnnotation(sid, sent.lang, tags, author, when, snapped, name))
        # every answer stored at or before the watermark was visible to this listing, so it
        # is accounted for; keep the keys of later ones, which the next pull must skip
        watermark = server_now - self.clock_lag
        t = after if moved else (max(watermark, after) if after else watermark)
        newer = sorted({f"{r['id']}@{r['updated_at']}" for _, r, w in found if t is None or w > t}
                       | {k for k in seen if t is None or _parse_time(k.split("@", 1)[1]) > t})
        settled = (activity if activity is not None and not moved
                   and server_now - _parse_time(activity) > self.clock_lag else None)
        result.cursor = json.dumps({"t": t.isoformat() if t else None, "seen": newer,
                                    "activity": settled, **keep})
        return result

    # -- people (the app's admin page and the tests) --------------------------------------
    def add_annotator(self, username: str, password: str) -> ArgillaIO:
        """Create an annotator in this workspace (or reuse one of that name); returns a
        connection that acts as them (their own API key)."""
        def create() -> dict:
            users = {u["username"]: u for u in self._http("GET", "/api/v1/users").json()["items"]}
            user = users.get(username)
            if user is None:
                user = self._http("POST", "/api/v1/users", json={
                    "first_name": username, "username": username, "password": password,
                    "role": "annotator"}).json()
            ws = self.client.workspaces(self.workspace)
            members = {u["username"] for u in self._http(
                "GET", f"/api/v1/workspaces/{ws.id}/users").json()["items"]}
            if username not in members:
                self._http("POST", f"/api/v1/workspaces/{ws.id}/users", json={"user_id": user["id"]})
            return user
        user = self._call(f"creating annotator {username}", create)
        return ArgillaIO(self.url, user["api_key"], workspace=self.workspace, retries=self.retries,
                         backoff_s=self.backoff_s, batch_size=self.batch_size,
                         timeout_s=self.timeout_s, sleep=self._sleep)

    def record_ids(self, name: str) -> dict[str, str]:
        """Sentence id -> Argilla record id (an owner's or admin's connection)."""
        return {r["external_id"]: r["id"] for r in self.iter_raw_records(name)}

    def submit(self, answers: Mapping[str, Iterable[Span]], *, status: str = "submitted") -> None:
        """Answer records (record id -> spans) as this connection's user, as an annotator
        does in the UI; 100 answers per request."""
        items = [{"record_id": rid, "status": status,
                  "values": {QUESTION: {"value": [{"start": sp.start, "end": sp.end,
                                                   "label": sp.label} for sp in spans]}}}
                 for rid, spans in answers.items()]
        for i in range(0, len(items), 100):
            done = self._call("submitting answers", self._http, "POST", "/api/v1/me/responses/bulk",
                              json={"items": items[i:i + 100]}).json()["items"]
            errors = [d["error"]["detail"] for d in done if d.get("error")]
            if errors:
                raise ServiceUnavailable(f"Argilla refused {len(errors)} answers: {errors[0]}")
