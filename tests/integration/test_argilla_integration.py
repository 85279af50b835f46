"""Against a real local Argilla (argilla-server 2.8 + Redis + noida-db + SQLite).

The stack is started once for this file by :class:`LocalArgilla` in a temporary folder
(the server's virtualenv is cached in ~/.cache/concner/argilla-venv, built once, ~70 s),
or an already running one is used when CONCNER_ARGILLA_URL and CONCNER_ARGILLA_API_KEY are
set. Without Redis or PyPI the tests skip, unless CONCNER_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time

import pytest

from concner.argilla.client import ArgillaIO, SpanSuggestion, dataset_name
from concner.argilla.launcher import LocalArgilla
from concner.config import load_config
from concner.errors import LabelSchemaError, ServiceUnavailable
from concner.labels import Span
from concner.sentence import Sentence

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LABELS = ["PER", "ORG", "LOC"]

# (lang, tokens, gold tags): emoji, combining marks, Arabic, Hebrew, Chinese without spaces
TEMPLATES = [
    ("en", ["Ana", "Pérez", "works", "at", "Acme", "Corp", "in", "Lima", "."],
     ["B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O"]),
    ("en", ["Meet", "Zoë", "😀", "in", "Paris", "🇫🇷", "with", "👩‍👩‍👧", "UNICEF"],
     ["O", "B-PER", "O", "O", "B-LOC", "O", "O", "O", "B-ORG"]),
    ("pt", ["Jose\u0301", "visitou", "Sa\u0303o", "Paulo", "e", "a", "Petrobra\u0301s"],
     ["B-PER", "O", "B-LOC", "I-LOC", "O", "O", "B-ORG"]),
    ("ar", ["زار", "محمد", "علي", "القاهرة", "مع", "الأمم", "المتحدة"],
     ["O", "B-PER", "I-PER", "B-LOC", "O", "B-ORG", "I-ORG"]),
    ("he", ["דוד", "בן", "גוריון", "ביקר", "בחיפה", "עם", "ההסתדרות"],
     ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]),
    ("zh", list("李明在北京的清华大学工作"),
     ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O"]),
]


def corpus(n: int, prefix: str = "s") -> list[Sentence]:
    out = []
    for i in range(n):
        lang, tokens, tags = TEMPLATES[i % len(TEMPLATES)]
        out.append(Sentence.from_tokens(f"{prefix}{i:03d}", lang, tokens, tags))
    return out


def model_guess(sent: Sentence) -> list[str]:
    """A 'model' that misses the last entity of every other sentence (so corrections differ)."""
    tags = list(sent.tags)
    if int(sent.id[-3:]) % 2:
        last = max(i for i, t in enumerate(tags) if t.startswith("B-"))
        for j in range(last, len(tags)):
            if j == last or tags[j].startswith("I-"):
                tags[j] = "O"
            else:
                break
    return tags


def predictions(sents, version_bias: float = 0.0) -> dict[str, SpanSuggestion]:
    out = {}
    for k, s in enumerate(sents):
        guess = s.with_tags(model_guess(s))
        spans = [Span(sp.start, sp.end, sp.label, round(0.5 + 0.01 * (k % 40), 3))
                 for sp in guess.spans]
        out[s.id] = SpanSuggestion(spans, uncertainty=round(version_bias + 0.001 * k, 4))
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    url, key = os.environ.get("CONCNER_ARGILLA_URL"), os.environ.get("CONCNER_ARGILLA_API_KEY")
    if url and key:
        yield None, url, key
        return
    local = LocalArgilla(tmp_path_factory.mktemp("argilla"), port=0, redis_port=0, search_port=0,
                         venv=load_config().services.argilla_venv,  # cached across runs
                         log=lambda m: None)
    try:
        status = local.up()
    except ServiceUnavailable as exc:
        local.down()
        if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"the local Argilla stack did not start: {exc}")
        pytest.skip(f"cannot start a local Argilla stack here: {exc}")
    try:
        yield local, status.url, status.api_key
    finally:
        local.down()


@pytest.fixture(scope="module")
def io(stack):
    _, url, key = stack
    return ArgillaIO(url, key, retries=2, backoff_s=0.2, batch_size=64)


@pytest.fixture(scope="module")
def project(io):
    return f"it-{os.getpid()}"


def test_stack_reports_every_part_and_up_is_idempotent(stack):
    local, url, key = stack
    if local is None:
        pytest.skip("an external Argilla is used (CONCNER_ARGILLA_URL)")
    status = local.status()
    assert [p.name for p in status.parts] == ["redis", "search", "server", "worker"]
    assert status.all_running and status.url == url
    again = local.up()
    assert again.already_running and again.api_key == key
    assert [p.pid for p in again.parts] == [p.pid for p in status.parts]
    mode = stat.S_IMODE(os.stat(local.credentials_path).st_mode)
    assert mode == 0o600
    assert key not in repr(again) and json.loads(local.credentials_path.read_text())["api_key"] == key


def test_datasets_are_created_once_with_the_project_settings(io, project):
    name = io.ensure_dataset(project, "target", "es", LABELS, min_submitted=2)
    assert name == dataset_name(project, "target", "es")
    assert io.ensure_dataset(project, "target", "es", LABELS, min_submitted=2) == name
    assert io.dataset_exists(name) and not io.dataset_exists(name + "-never-made")
    src = io.ensure_dataset(project, "source", "en", LABELS)
    assert src != name
    ds = io.client.datasets(name=name, workspace="argilla")
    question = ds.settings.questions["entities"]
    assert list(question.labels) == LABELS and question.allow_overlapping is False
    assert {m.name for m in ds.settings.metadata} == {"lang", "sentence_id", "uncertainty",
                                                      "model_version", "ask_order"}
    assert ds.settings.distribution.min_submitted == 2
    assert all(label in ds.settings.guidelines for label in LABELS)
    with pytest.raises(LabelSchemaError, match="has labels"):
        io.ensure_dataset(project, "target", "es", ["PER", "LOC"])


def test_push_answer_pull_refresh_round_trip(io, project):
    name = io.ensure_dataset(project, "target", "es", LABELS, min_submitted=2)
    sents = corpus(200)
    preds = predictions(sents)
    report = io.push(name, sents, preds, model_version="v1")
    assert (report.created, report.updated) == (200, 0)
    assert io.push(name, sents, preds, model_version="v1").unchanged == 200  # idempotent
    assert io.most_uncertain(name, 3) == ["s199", "s198", "s197"]

    raw = {r["external_id"]: r for r in io.iter_raw_records(name)}
    assert len(raw) == 200
    for s in sents[:12]:
        sug = raw[s.id]["suggestions"][0]
        assert sug["agent"] == "v1"
        assert [(v["start"], v["end"], v["label"]) for v in sug["value"]] == \
            [sp.key() for sp in preds[s.id].spans]
        assert sug["score"] == [sp.score for sp in preds[s.id].spans]
        assert raw[s.id]["fields"]["text"] == s.text
        assert raw[s.id]["metadata"]["uncertainty"] == preds[s.id].uncertainty

    fixer = io.add_annotator("ann-fixer", "fixer-password-1")
    accepter = io.add_annotator("ann-accepter", "accepter-password-1")
    ids = io.record_ids(name)
    answered = sents[:30]  # each answer costs the server ~0.2-0.4 s here
    fixer.submit({ids[s.id]: s.spans for s in answered})
    accepter.submit({ids[s.id]: [Span(v["start"], v["end"], v["label"])
                                 for v in raw[s.id]["suggestions"][0]["value"]] for s in answered})

    by_id = {s.id: s for s in sents}
    pulled = io.pull(name, by_id)
    assert pulled.problems == [] and pulled.snapped_spans == 0
    got = {(a.sentence_id, a.author): a.tags for a in pulled.annotations}
    assert len(got) == 60
    for s in answered:
        assert got[(s.id, "ann-fixer")] == s.tags
        assert got[(s.id, "ann-accepter")] == model_guess(s)
    assert sum(got[(s.id, "ann-fixer")] != got[(s.id, "ann-accepter")] for s in answered) == 15
    assert io.pull(name, by_id, since=pulled.cursor).annotations == []
    assert io.progress(name) == {"records": 200, "submitted": len(answered),
                                 "answers": {"ann-accepter": len(answered),
                                             "ann-fixer": len(answered)}}
    assert io.dataset_url(name).endswith(f"/dataset/{io.dataset_id(name)}/annotation-mode")

    # a character-level selection is snapped to whole tokens and counted
    odd = sents[30]  # "Ana Pérez ..." : select "na Pé"
    fixer.submit({ids[odd.id]: [Span(1, 6, "PER"), Span(odd.offsets[7][0], odd.offsets[7][1], "LOC")]})
    late = io.pull(name, by_id, since=pulled.cursor)
    assert [(a.sentence_id, a.snapped_spans) for a in late.annotations] == [(odd.id, 1)]
    assert late.annotations[0].tags[:2] == ["B-PER", "I-PER"] and late.annotations[0].tags[7] == "B-LOC"

    # promotion: new suggestions only where nobody has answered
    refreshed = io.refresh_suggestions(name, sents, predictions(sents, 0.5), model_version="v2")
    assert refreshed.skipped_answered == 31 and refreshed.updated == 169 and refreshed.created == 0
    after = {r["external_id"]: r for r in io.iter_raw_records(name)}
    for s in sents:
        agent = after[s.id]["suggestions"][0]["agent"]
        assert agent == ("v1" if int(s.id[1:]) <= 30 else "v2"), s.id
        assert after[s.id]["suggestions"][0]["value"] == raw[s.id]["suggestions"][0]["value"] \
            or agent == "v2"
    assert len(after[sents[0].id]["responses"]) == 2  # answers untouched


def test_records_carry_the_ask_order_and_an_old_dataset_gets_the_property(io, project):
    import argilla as rg

    # a dataset made before the ask_order metadata existed
    name = dataset_name(project, "target", "he")
    old = rg.Dataset(name=name, workspace="argilla", client=io.client, settings=rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.SpanQuestion(name="entities", field="text", labels=LABELS,
                                   allow_overlapping=False)],
        metadata=[rg.TermsMetadataProperty(name="lang"),
                  rg.TermsMetadataProperty(name="sentence_id"),
                  rg.FloatMetadataProperty(name="uncertainty"),
                  rg.TermsMetadataProperty(name="model_version")]))
    old.create()
    assert io.ensure_dataset(project, "target", "he", LABELS) == name
    ds = io.client.datasets(name=name, workspace="argilla")
    assert "ask_order" in {m.name for m in ds.settings.metadata}
    assert io.ensure_dataset(project, "target", "he", LABELS) == name  # idempotent
    sents = corpus(12, prefix="h")
    # the strategy's order is not the uncertainty order (a diversity batch mixes them)
    order = [5, 0, 9, 2, 11, 7, 1, 3, 8, 4, 10, 6]
    preds = {s.id: SpanSuggestion(p.spans, p.uncertainty, ask_order=order.index(k) + 1)
             for k, (s, p) in enumerate(zip(sents, predictions(sents).values()))}
    io.push(name, sents, preds, model_version="v1")
    assert io.next_to_ask(name, 4) == [sents[k].id for k in order[:4]]
    assert io.most_uncertain(name, 2) == ["h011", "h010"]
    # a new model's order reaches the records nobody has answered yet
    reordered = {sid: SpanSuggestion(p.spans, p.uncertainty, ask_order=13 - p.ask_order)
                 for sid, p in preds.items()}
    assert io.refresh_suggestions(name, sents, reordered, model_version="v2").updated == 12
    assert io.next_to_ask(name, 2) == [sents[order[-1]].id, sents[order[-2]].id]


def test_stopping_the_server_mid_sync_loses_nothing(stack, io, project, caplog):
    local, url, key = stack
    if local is None:
        pytest.skip("an external Argilla is used (CONCNER_ARGILLA_URL): it cannot be restarted")
    name = io.ensure_dataset(project, "target", "sw", LABELS)
    sents = corpus(60, prefix="m")
    annotator = io.add_annotator("ann-fixer", "fixer-password-1")
    preds = predictions(sents)
    io.push(name, sents[:20], preds, model_version="v1")
    cursor = io.pull(name, {}).cursor
    ids = io.record_ids(name)
    annotator.submit({ids[s.id]: s.spans for s in sents[:10]})  # answered, not yet pulled

    small = ArgillaIO(url, key, retries=1, backoff_s=0.05, batch_size=10)
    stopped = []

    def stop_after_first_batch(batch_ids):
        if not stopped:
            stopped.append(list(batch_ids))
            local.down()

    caplog.set_level(logging.DEBUG)
    with pytest.raises(ServiceUnavailable) as err:
        small.push(name, sents, preds, model_version="v1", on_batch=stop_after_first_batch)
    assert "after 2 attempts" in str(err.value) and key not in str(err.value)
    with pytest.raises(ServiceUnavailable):
        small.pull(name, {s.id: s for s in sents}, since=cursor)
    assert all(key not in r.getMessage() for r in caplog.records)
    assert len(stopped[0]) == 10

    local.up()  # restart: SQLite kept everything, the search index is rebuilt
    report = small.push(name, sents, preds, model_version="v1")
    assert report.created == 30 and report.skipped_answered == 10  # 20 + the first batch stored
    pulled = small.pull(name, {s.id: s for s in sents}, since=cursor)
    assert sorted(a.sentence_id for a in pulled.annotations) == [s.id for s in sents[:10]]
    assert all(a.tags == {s.id: s for s in sents}[a.sentence_id].tags for a in pulled.annotations)
    assert len(small.record_ids(name)) == 60
    # the search index (what annotators sort and filter with) came back too
    assert small.most_uncertain(name, 3) == ["m059", "m058", "m057"]


def test_bad_api_key_is_refused_without_echoing_it(stack):
    _, url, _ = stack
    wrong = "concner.this-key-is-wrong-0123456789"
    with pytest.raises(ServiceUnavailable) as err:
        ArgillaIO(url, wrong, retries=0).check()
    assert "rejected the API key" in str(err.value) and wrong not in str(err.value)


def test_sync_project_pushes_pool_and_stores_every_answer(io, tmp_path):
    from concner.argilla.sync import sync_project
    from concner.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    pname = f"Sync Demo {os.getpid()}"
    store.create_project(pname, source_lang="en", target_langs=["ar"], entity_types=LABELS,
                         encoder="tiny")
    en_tokens, ar_tokens = TEMPLATES[0][1], TEMPLATES[3][1]
    ar_gold = TEMPLATES[3][2]
    store.import_sentences(pname, [Sentence.from_tokens(f"en{i}", "en", en_tokens) for i in range(4)],
                           role="source", split="pool")
    store.import_sentences(pname, [Sentence.from_tokens(f"ar{i}", "ar", ar_tokens) for i in range(5)],
                           role="target", split="pool")
    store.import_sentences(pname, [Sentence.from_tokens("ar-dev", "ar", ar_tokens, ar_gold)],
                           role="target", split="dev")
    mv = store.add_model_version(pname, run_id=None, path="unused", mean_f1=None, version=1)
    store.activate_model_version(mv.id)
    pool = store.sentences(pname, role="target", split="pool")
    guess = ["O", "B-PER", "I-PER", "O", "O", "O", "O"]
    store.save_predictions(mv.id, [  # the strategy's order, not the uncertainty order
        (s.meta["db_id"], guess, [{"start": sp.start, "end": sp.end, "label": sp.label,
                                   "score": 0.8} for sp in s.with_tags(guess).spans], 0.1 * k,
         0.1 * k, {0: 1, 3: 2, 1: 3, 4: 4, 2: 5}[k]) for k, s in enumerate(pool)],
        strategy="diversity/mnlp")
    first = sync_project(store, pname, io, queue_size=3)  # the 3 asked first
    src_name, tgt_name = dataset_name(pname, "source", "en"), dataset_name(pname, "target", "ar")
    assert [(r.dataset, r.pushed, r.new_labels) for r in first] == [(src_name, 3, 0), (tgt_name, 3, 0)]
    assert sorted(io.record_ids(tgt_name)) == ["ar0", "ar1", "ar3"]
    assert [r.pushed for r in sync_project(store, pname, io)] == [1, 2]
    raw = {r["external_id"]: r for r in io.iter_raw_records(tgt_name)}
    assert sorted(raw) == [f"ar{i}" for i in range(5)]  # the dev sentence stays out
    assert raw["ar0"]["suggestions"][0]["agent"] == "v1"
    assert {sid: r["metadata"]["ask_order"] for sid, r in raw.items()} == \
        {"ar0": 1, "ar3": 2, "ar1": 3, "ar4": 4, "ar2": 5}
    assert io.next_to_ask(tgt_name, 5) == ["ar0", "ar3", "ar1", "ar4", "ar2"]

    one = io.add_annotator("ann-fixer", "fixer-password-1")
    two = io.add_annotator("ann-accepter", "accepter-password-1")
    ids = io.record_ids(tgt_name)
    gold = Sentence.from_tokens("x", "ar", ar_tokens, ar_gold)
    one.submit({ids["ar0"]: gold.spans, ids["ar1"]: gold.spans})
    two.submit({ids["ar0"]: gold.with_tags(guess).spans})

    second = sync_project(store, pname, io)
    assert [r.new_labels for r in second] == [0, 3] and second[1].pushed == 0
    labelled = {s.id: s for s in store.sentences(pname, role="target", labelled=True)}
    assert labelled["ar1"].tags == ar_gold and labelled["ar1"].meta["n_voters"] == 1
    assert labelled["ar0"].meta["n_voters"] == 2 and labelled["ar0"].meta["agreement"] == 0.5
    state = store.get_sync_state(pname, tgt_name)
    assert state.status == "ok" and state.cursor == second[1].cursor
    assert [r.new_labels for r in sync_project(store, pname, io)] == [0, 0]
    assert store.annotation_count(pname) == 4  # 3 answers + the dev gold, nothing twice


# -- incremental sync (issue 16 item 7): what a sync reads grows with the change ----------

class _Reads:
    """Counts, independently of ArgillaIO.stats, the HTTP requests a connection sends and
    the records the server's answers carry (an httpx response hook)."""

    def __init__(self, io: ArgillaIO):
        self.requests = self.records = 0
        http = io.client.api.http_client
        hooks = http.event_hooks
        hooks["response"] = [*hooks.get("response", []), self._seen]
        http.event_hooks = hooks

    def _seen(self, response) -> None:
        self.requests += 1
        if "/records" in response.request.url.path and response.request.method in ("GET", "POST"):
            response.read()
            body = response.json() if response.status_code == 200 else {}
            self.records += len(body.get("items", [])) if isinstance(body, dict) else 0

    def since(self, mark: tuple[int, int]) -> tuple[int, int]:
        return self.requests - mark[0], self.records - mark[1]

    @property
    def mark(self) -> tuple[int, int]:
        return self.requests, self.records


def _sync_project_store(tmp_path, n: int, tag: str):
    from concner.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    pname = f"Incr {tag} {os.getpid()}"
    store.create_project(pname, source_lang="en", target_langs=["ar"], entity_types=LABELS,
                         encoder="tiny")  # its target dataset stays empty
    _, tokens, gold = TEMPLATES[0]
    sents = [Sentence.from_tokens(f"{tag}{i:04d}", "en", tokens) for i in range(n)]
    store.import_sentences(pname, sents, role="source", split="pool")
    gold_spans = Sentence.from_tokens("x", "en", tokens, gold).spans
    return store, pname, dataset_name(pname, "source", "en"), gold_spans


def _versions(store, pname: str, sid: str, author: str) -> list[list[str]]:
    import sqlalchemy as sa

    from concner.store.model_versions import Annotation, SentenceRow

    with store.read() as s:
        return [list(t) for t in s.scalars(
            sa.select(Annotation.tags).join(SentenceRow, SentenceRow.id == Annotation.sentence_id)
            .where(SentenceRow.external_id == sid, Annotation.author == author)
            .order_by(Annotation.id))]


def test_a_sync_reads_only_what_changed_and_stores_a_changed_answer_once(stack, tmp_path):
    from concner.argilla.sync import sync_project

    _, url, key = stack
    io = ArgillaIO(url, key, retries=2, backoff_s=0.2, batch_size=200)
    reads = _Reads(io)
    store, pname, name, gold_spans = _sync_project_store(tmp_path, 400, "c")
    first = sync_project(store, pname, io)[0]
    assert first.full and first.pushed == 400
    ann = io.add_annotator("ann-fixer", "fixer-password-1")
    ids = io.record_ids(name)
    answered = ["c0003", "c0100", "c0250"]
    ann.submit({ids[sid]: gold_spans for sid in answered})

    mark = reads.mark
    both = sync_project(store, pname, io)  # the source dataset and the target one (not made)
    second, requests, records = both[0], *reads.since(mark)
    assert not second.full and second.new_labels == 3 and second.pushed == 0
    assert records == sum(r.records_read for r in both) == 3  # the answered ones, not 400
    assert requests == sum(r.requests for r in both) and requests <= 40  # none per record

    # one answer changed: the new version is stored, exactly once
    ann.submit({ids["c0100"]: gold_spans[:1]})
    mark = reads.mark
    third = sync_project(store, pname, io)[0]
    assert third.new_labels == 1 and reads.since(mark)[1] == 3
    from concner.labels import spans_to_tags

    tags_now = spans_to_tags(gold_spans[:1], Sentence.from_tokens("x", "en", TEMPLATES[0][1]).offsets)[0]
    assert _versions(store, pname, "c0100", "ann-fixer")[-1] == tags_now
    assert len(_versions(store, pname, "c0100", "ann-fixer")) == 2
    assert [len(_versions(store, pname, s, "ann-fixer")) for s in ("c0003", "c0250")] == [1, 1]

    # nothing changed since: at most the answered records are read (the push policy's
    # top-up of the queue can touch the dataset's activity mark), never the 400; the
    # answers stay stored once
    time.sleep(io.clock_lag.total_seconds() + 1)  # let the activity mark settle
    sync_project(store, pname, io)
    mark = reads.mark
    idle = sync_project(store, pname, io)[0]
    assert idle.new_labels == 0 and reads.since(mark)[1] == idle.records_read <= 3
    assert store.annotation_count(pname) == 4
    # the old path (a full read) for comparison reads every record
    full = sync_project(store, pname, io, full_every_s=0)[0]
    assert full.full and full.records_read >= 400 and full.new_labels == 0


def test_answers_at_the_cursor_time_and_in_its_second_are_taken_once(stack, tmp_path):
    from datetime import timedelta

    from concner.argilla.cursor import parse_server_time

    _, url, key = stack
    io = ArgillaIO(url, key, retries=2, backoff_s=0.2)
    store, pname, name, gold_spans = _sync_project_store(tmp_path, 5, "t")
    sents = {s.id: s for s in store.sentences(pname, role="source")}
    io.ensure_dataset(pname, "source", "en", LABELS)
    io.push(name, list(sents.values()))
    before = io.pull(name, sents).cursor
    ann = io.add_annotator("ann-fixer", "fixer-password-1")
    ids = io.record_ids(name)
    ann.submit({ids["t0000"]: gold_spans})
    resp = next(r for r in io.iter_raw_records(name) if r["responses"])["responses"][0]
    when = parse_server_time(resp["updated_at"])

    # a cursor whose time is in the same second as the answer, just before it
    same_second = json.loads(before) | {"t": when.replace(microsecond=0).isoformat(),
                                        "activity": None}
    assert [a.sentence_id for a in io.pull(name, sents, json.dumps(same_second)).annotations] \
        == ["t0000"]

    # a server clock that puts the cursor exactly at the answer's time: that pull takes
    # it, the next one (cursor t == updated_at) does not take it again
    io._server_now = lambda: when + io.clock_lag
    at = io.pull(name, sents, before, full=True)
    assert [a.sentence_id for a in at.annotations] == ["t0000"]
    assert json.loads(at.cursor)["t"] == when.isoformat()
    assert io.pull(name, sents, at.cursor, full=True).annotations == []
    # the clock said the answer was fresh: its activity mark is checked again next time,
    # and the pull says when that next time can see what this one might have missed
    assert json.loads(at.cursor)["activity"] is None
    assert at.recheck_after == io.clock_lag.total_seconds() + 1.0
    io._server_now = lambda: when + 10 * io.clock_lag  # long after: everything was visible
    assert io.pull(name, sents, at.cursor).recheck_after is None
    del io._server_now
    # answered again in the same second as the cursor: taken once more, then not again
    ann.submit({ids["t0000"]: gold_spans[:1]})
    again = io.pull(name, sents, at.cursor)
    assert len(again.annotations) == 1 and again.annotations[0].submitted_at > when
    assert io.pull(name, sents, again.cursor).annotations == []
    assert parse_server_time(json.loads(again.cursor)["t"]) >= when - timedelta(seconds=5)


def test_a_failed_save_moves_neither_cursor_nor_answers(stack, tmp_path):
    from concner.argilla.sync import sync_project

    _, url, key = stack
    io = ArgillaIO(url, key, retries=2, backoff_s=0.2)
    store, pname, name, gold_spans = _sync_project_store(tmp_path, 6, "k")
    sync_project(store, pname, io)
    cursor = store.get_sync_state(pname, name).cursor
    ann = io.add_annotator("ann-fixer", "fixer-password-1")
    ids = io.record_ids(name)
    ann.submit({ids[f"k000{i}"]: gold_spans for i in range(4)})
    real, calls = store.add_annotation, []

    def dies_after_the_first_half(*args, **kw):
        calls.append(args)
        if len(calls) > 2:
            raise RuntimeError("killed while saving")
        return real(*args, **kw)

    store.add_annotation = dies_after_the_first_half
    with pytest.raises(RuntimeError, match="killed"):
        sync_project(store, pname, io)
    assert len(calls) == 3  # two answers were written inside the transaction
    assert store.get_sync_state(pname, name).cursor == cursor
    assert store.annotation_count(pname) == 0
    store.add_annotation = real
    assert [r.new_labels for r in sync_project(store, pname, io)] == [4, 0]
    assert sync_project(store, pname, io)[0].new_labels == 0
    assert store.annotation_count(pname) == 4


# -- one push policy (issue 17): the next K in ask order, topped up; no empty datasets ------

def _ranked_pool_store(tmp_path, n: int, order: list[int]):
    """A project en -> ar, sw: every English sentence labelled, no Swahili at all, ``n``
    Arabic pool sentences predicted by v1 with ask order ``order`` (index -> place)."""
    from concner.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    pname = f"Policy {os.getpid()}"
    store.create_project(pname, source_lang="en", target_langs=["ar", "sw"], entity_types=LABELS,
                         encoder="tiny")
    en_tokens, en_gold = TEMPLATES[0][1], TEMPLATES[0][2]
    ar_tokens = TEMPLATES[3][1]
    store.import_sentences(pname, [Sentence.from_tokens("en0", "en", en_tokens, en_gold)],
                           role="source", split="train")
    store.import_sentences(pname, [Sentence.from_tokens(f"ar{i:02d}", "ar", ar_tokens)
                                   for i in range(n)], role="target", split="pool")
    mv = store.add_model_version(pname, run_id=None, path="unused", mean_f1=None, version=1)
    store.activate_model_version(mv.id)
    guess = ["O", "B-PER", "I-PER", "O", "O", "O", "O"]
    pool = store.sentences(pname, role="target", split="pool")
    store.save_predictions(mv.id, [
        (s.meta["db_id"], guess, [{"start": sp.start, "end": sp.end, "label": sp.label,
                                   "score": 0.8} for sp in s.with_tags(guess).spans], 0.1 * k,
         0.1 * k, order[k]) for k, s in enumerate(pool)], strategy="diversity/mnlp")
    asked = [s.id for _, s in sorted(zip(order, pool), key=lambda p: p[0])]
    return store, pname, asked


def test_the_sync_keeps_the_next_k_in_ask_order_and_tops_up_as_they_get_answered(io, tmp_path):
    from concner.argilla.sync import sync_project

    order = [7, 2, 9, 1, 12, 4, 10, 3, 11, 6, 5, 8]  # sentence index -> ask order
    store, pname, asked = _ranked_pool_store(tmp_path, 12, order)
    en, ar, sw = (dataset_name(pname, r, lang) for r, lang in
                  (("source", "en"), ("target", "ar"), ("target", "sw")))
    first = sync_project(store, pname, io, queue_size=4)
    assert [r.pushed for r in first] == [0, 4, 0]
    # a dataset is made when it gets its first records: nothing to ask in en or sw
    assert not io.dataset_exists(en) and not io.dataset_exists(sw)
    assert sorted(io.record_ids(ar)) == sorted(asked[:4])
    assert [r.pushed for r in sync_project(store, pname, io, queue_size=4)] == [0, 0, 0]
    assert len(io.record_ids(ar)) == 4  # a sync with nothing answered adds nothing

    # a batch sent on top (the Review page's button) stays there
    sents = {s.id: s for s in store.sentences(pname, role="target")}
    io.push(ar, [sents[sid] for sid in asked[-2:]])
    ann = io.add_annotator("ann-fixer", "fixer-password-1")
    ids = io.record_ids(ar)
    gold = Sentence.from_tokens("x", "ar", TEMPLATES[3][1], TEMPLATES[3][2])
    ann.submit({ids[sid]: gold.spans for sid in asked[:2]})
    answered = sync_project(store, pname, io, queue_size=4)
    assert answered[1].new_labels == 2
    topped = sync_project(store, pname, io, queue_size=4)
    assert topped[1].pushed == 2  # the next two in ask order took the answered ones' place
    assert sorted(io.record_ids(ar)) == sorted(asked[:6] + asked[-2:])
    assert not io.dataset_exists(en) and not io.dataset_exists(sw)

    # the app's link sorts the annotation page by ask order: what an annotator then gets
    from urllib.parse import parse_qs, urlparse

    link = io.ask_order_url(ar)
    entity, prop, direction = parse_qs(urlparse(link).query)["sort"][0].split(".")
    body = {"filters": {"and": [{"type": "terms", "values": ["pending"],
                                 "scope": {"entity": "record", "property": "status"}}]},
            "sort": [{"scope": {"entity": entity, "metadata_property": prop},
                      "order": direction}]}
    seen = ann._http("POST", f"/api/v1/me/datasets/{io.dataset_id(ar)}/records/search",
                     params={"limit": 20}, json=body).json()["items"]
    assert [item["record"]["external_id"] for item in seen] == asked[2:6] + asked[-2:]
