"""concner.argilla.client without an Argilla server: names, API key sources, retries and secrecy.

Retries are exercised against real loopback sockets: a closed port (connection refused)
and a tiny HTTP server that answers 503 a few times before it answers.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from concner.argilla.client import (
    ArgillaIO,
    SpanSuggestion,
    dataset_name,
    guidelines_text,
    resolve_api_key,
)
from concner.config import ServicesConfig
from concner.errors import ConfigError, ServiceUnavailable
from concner.sentence import Sentence

KEY = "concner.secret-key-that-must-never-leak-0123456789"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dataset_names_are_sanitised_and_distinct_per_role_and_language():
    a = dataset_name("My Project: Swahili/Zulu!", "target", "sw")
    assert a == "my-project-swahili-zulu-correct-sw"
    assert dataset_name("My Project: Swahili/Zulu!", "source", "en") == "my-project-swahili-zulu-annotate-en"
    assert dataset_name("p", "target", "zu") != dataset_name("p", "target", "sw")
    with pytest.raises(ConfigError, match="role"):
        dataset_name("p", "translation", "sw")
    with pytest.raises(ConfigError, match="letters or digits"):
        dataset_name("???", "source", "en")


def test_api_key_sources_in_order(tmp_path):
    data = tmp_path / "argilla"
    data.mkdir()
    services = ServicesConfig(argilla_data_dir=str(data))
    with pytest.raises(ConfigError, match="ARGILLA_API_KEY"):
        resolve_api_key(services, env={})
    (data / "credentials.json").write_text(json.dumps({"api_key": "from-launcher"}))
    assert resolve_api_key(services, env={}) == "from-launcher"
    assert resolve_api_key(services, env={"ARGILLA_API_KEY": "from-env"}) == "from-env"
    configured = ServicesConfig(argilla_data_dir=str(data), argilla_api_key="from-config")
    assert resolve_api_key(configured, env={"ARGILLA_API_KEY": "from-env"}) == "from-config"


def test_unreachable_server_retries_with_backoff_then_fails_without_the_key(caplog):
    slept = []
    io = ArgillaIO(f"http://127.0.0.1:{closed_port()}", KEY, retries=3, backoff_s=0.5,
                   sleep=slept.append)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ServiceUnavailable) as err:
        io.check()
    assert slept == [0.5, 1.0, 2.0]
    msg = str(err.value)
    assert "after 4 attempts" in msg and "concner argilla status" in msg
    assert KEY not in msg and KEY not in repr(io)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert caplog.records and all(KEY not in r.getMessage() for r in caplog.records)


class _Flaky(BaseHTTPRequestHandler):
    failures = 2
    calls: list[str] = []  # noqa: RUF012 (reset by the fixture)

    def do_GET(self):
        type(self).calls.append(self.path)
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b'{"detail": "warming up"}')
            return
        body = json.dumps({"id": "00000000-0000-0000-0000-000000000001", "username": "owner",
                           "role": "owner", "first_name": "o", "api_key": "x",
                           "inserted_at": "2026-01-01T00:00:00", "updated_at": "2026-01-01T00:00:00"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server():
    _Flaky.failures, _Flaky.calls = 2, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_transient_5xx_is_retried_until_the_server_answers(flaky_server):
    slept = []
    io = ArgillaIO(flaky_server, KEY, retries=4, backoff_s=0.01, sleep=slept.append)
    assert io.check() == "owner"
    # two 503s while connecting, the answer, then check()'s own request
    assert _Flaky.calls == ["/api/v1/me"] * 4 and slept == [0.01, 0.02]


def test_5xx_beyond_the_retries_is_service_unavailable(flaky_server):
    _Flaky.failures = 10
    io = ArgillaIO(flaky_server, KEY, retries=1, backoff_s=0.0, sleep=lambda s: None)
    with pytest.raises(ServiceUnavailable, match="after 2 attempts"):
        io.check()


def test_backoff_is_bounded():
    slept = []
    io = ArgillaIO(f"http://127.0.0.1:{closed_port()}", KEY, retries=8, backoff_s=1.0,
                   sleep=slept.append)
    with pytest.raises(ServiceUnavailable):
        io.check()
    assert len(slept) == 8 and max(slept) == 30.0 and slept[:3] == [1.0, 2.0, 4.0]


def test_prediction_from_tags_uses_character_offsets():
    sent = Sentence.from_tokens("s1", "zh", list("李明在北京"))
    pred = SpanSuggestion.from_tags(sent, ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], 0.7)
    assert [(sp.start, sp.end, sp.label) for sp in pred.spans] == [(0, 2, "PER"), (3, 5, "LOC")]
    assert [sent.text[sp.start:sp.end] for sp in pred.spans] == ["李明", "北京"]


def test_guidelines_explain_every_label_with_an_example():
    text = guidelines_text(["PER", "ORG", "LOC", "DISEASE"], {"DISEASE": ("Illnesses.", "[malaria]")})
    for label in ("PER", "ORG", "LOC", "DISEASE"):
        row = next(line for line in text.splitlines() if f"**{label}**" in line)
        assert "[" in row  # an example with the span in brackets
    assert "malaria" in text
    # both datasets tell annotators how to follow the active-learning order, by the name
    # the metadata property shows in Argilla's sort menu
    from concner.argilla.client import ask_order_property

    title = ask_order_property().title
    for role in ("source", "target"):
        words = guidelines_text(["PER"], role=role)
        assert "**Sort → Ask order** (ascending)" in words
        assert title.startswith("Ask order")
        # and name the Review page's link that opens the dataset already sorted
        from concner.argilla.client import ASK_ORDER_LINK

        assert f"**{ASK_ORDER_LINK}**" in words


def test_the_ask_order_link_sorts_the_annotation_page_by_the_ask_order_metadata():
    from urllib.parse import parse_qs, urlparse

    from concner.argilla.client import ASK_ORDER

    io = ArgillaIO("http://argilla.test:6900/", "key")
    io.dataset_id = lambda name: "0d5c-id"
    link = io.ask_order_url("demo-correct-es")
    parts = urlparse(link)
    assert link.startswith(io.dataset_url("demo-correct-es"))
    # the Argilla 2.8 UI reads `sort` as <entity>.<name>.<order>
    assert parse_qs(parts.query)["sort"] == [f"metadata.{ASK_ORDER}.asc"]


def test_missing_key_is_a_config_error():
    with pytest.raises(ConfigError):
        ArgillaIO("http://127.0.0.1:1", "")


class _Users:
    """Stands in for the server's ``GET /api/v1/users`` answer; counts the calls."""

    def __init__(self, users: dict[str, str]):
        self.users, self.calls = users, 0

    def __call__(self, method, path, **kw):
        assert (method, path) == ("GET", "/api/v1/users")
        self.calls += 1
        items = [{"id": i, "username": u} for i, u in self.users.items()]
        return type("Resp", (), {"json": lambda self: {"items": items}})()


def _raw(sid: str, *responses: tuple[str, str]) -> dict:
    return {"external_id": sid, "responses": [{"user_id": u, "status": st} for u, st in responses]}


def test_progress_counts_records_submissions_and_answers_per_annotator():
    io = ArgillaIO("http://127.0.0.1:9", KEY, retries=0)
    users = _Users({"u1": "ana", "u2": "ben"})
    raws = [_raw("a", ("u1", "submitted"), ("u2", "submitted")),
            _raw("b", ("u1", "draft")),  # a draft is not an answer
            _raw("c", ("u2", "submitted"), ("u3", "submitted")),  # u3: deleted user
            _raw("d"), {"external_id": "e", "responses": None}]
    io.iter_raw_records = lambda name: iter(raws)
    io._http = users
    progress = io.progress("ds")
    assert progress["records"] == len(raws)
    assert progress["submitted"] == 2  # a and c; b has only a draft
    assert progress["answers"] == {"ana": 1, "ben": 2, "user:u3": 1}
    assert list(progress["answers"]) == sorted(progress["answers"])
    assert users.calls == 2  # listed once, again only for the id it did not know
    io.progress("ds")
    assert users.calls == 3  # the unknown id is looked up again; known ones are cached


def test_dataset_url_is_the_annotation_page_of_the_dataset_id():
    io = ArgillaIO("http://argilla.example:6900/", KEY, retries=0)
    io._datasets["ds"] = type("Ds", (), {"id": "5c1e"})()  # what a lookup would have cached
    assert io.dataset_id("ds") == "5c1e"
    assert io.dataset_url("ds") == "http://argilla.example:6900/dataset/5c1e/annotation-mode"


def test_the_apps_progress_table_uses_the_public_progress():
    from concner.ui.argilla_view import progress_rows

    class PublicOnly:  # no private attributes: the view must not need them
        def progress(self, name):
            return {"records": 3, "submitted": 1, "answers": {"ana": 2, "ben": 1}}

    row = progress_rows(PublicOnly(), "ds")
    assert row == {"dataset": "ds", "records": 3, "submitted": 1, "by ana": 2, "by ben": 1}
