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

Beside it, without the SDK: :mod:`concner.argilla.reads` (reading records, answers and
users over the REST API; :class:`ArgillaIO` gives it the requests),
:mod:`concner.argilla.cursor` (the pull cursor) and :mod:`concner.argilla.server_json`
(the dataset's names on the server, the search bodies, reading a span answer).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import argilla as rg
import httpx
from argilla._exceptions import ArgillaAPIError, ArgillaCredentialsError, ArgillaError

from concner.argilla.cursor import WATERMARK_LAG
from concner.argilla.reads import RecordReads
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
from concner.argilla.server_json import ASK_ORDER, BY_ID_MAX, FIELD, QUESTION
from concner.config import ServicesConfig
from concner.errors import ConfigError, LabelSchemaError, ServiceUnavailable
from concner.labels import Span
from concner.sentence import Sentence

log = logging.getLogger("concner.argilla")

_MAX_BACKOFF_S = 30.0


def _digest(record: rg.Record) -> str:
    """What a pushed record looks like (text, metadata, suggestion), in 12 hex digits."""
    sug = [[s.value, s.agent, s.score] for s in record.suggestions]
    blob = json.dumps([record.fields[FIELD], record.metadata.to_dict(), sug], sort_keys=True,
                      ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=6).hexdigest()


def ask_order_property() -> rg.IntegerMetadataProperty:
    """The ``ask_order`` metadata property (its title is what Argilla's sort menu shows)."""
    return rg.IntegerMetadataProperty(name=ASK_ORDER, title="Ask order (1 = first)")


def _suggestion(pred: SpanSuggestion, agent: str) -> rg.Suggestion:
    value = [{"start": s.start, "end": s.end, "label": s.label} for s in pred.spans]
    scores = [s.score for s in pred.spans]
    score = [float(x) for x in scores] if value and None not in scores else None
    return rg.Suggestion(QUESTION, value, score=score, agent=agent, type="model")


class ArgillaIO(RecordReads):
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
        self.clock_lag = WATERMARK_LAG

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

    def request(self, what: str, method: str, path: str, **kw) -> httpx.Response:
        """``method path`` on the server, with :meth:`_call`'s retries (``what`` names it in
        errors)."""
        return self._call(what, self._http, method, path, **kw)

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
                prop = ds.settings.metadata.add(ask_order_property())
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
                      ask_order_property()],
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
        when there are more than :data:`~concner.argilla.server_json.BY_ID_MAX`. Updated in
        place. Without it every record of the dataset is read."""
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
        if memo is None or len(planned) > BY_ID_MAX:
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
