"""The store on SQLite and on a real PostgreSQL (CONCNER_TEST_POSTGRES_URL): migrations,
one-transaction imports, label versions and consensus, the retrain lock and coalescing,
cancellation, sync state."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from storekit import TINY_TRAINING, database_url, make_project, make_sentences, tiny_encoder

from concner.errors import DataFormatError, LabelSchemaError, StoreConflict
from concner.sentence import Sentence
from concner.store import Store, current_label, upgrade_database
from concner.store.model_versions import Base

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    url, cleanup = database_url(request.param, tmp_path)
    yield url
    cleanup()


@pytest.fixture
def store(db_url):
    st = Store(db_url)
    yield st
    st.close()


def _alembic_cfg():
    from alembic.config import Config as AlembicConfig

    from concner.store.db import MIGRATIONS_DIR

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def test_schema_migrates_from_empty(db_url):
    from alembic.script import ScriptDirectory

    engine = sa.create_engine(db_url)
    assert sa.inspect(engine).get_table_names() == []
    upgrade_database(db_url)
    upgrade_database(db_url)  # idempotent
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(_alembic_cfg()).get_current_head()
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head
    # the migrated schema is what the models describe (no pending autogenerate diff)
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    engine.dispose()


def test_timestamps_are_aware_utc(store):
    project = store.create_project("p", source_lang="en", target_langs=["de"],
                                   entity_types=["PER"], encoder="enc")
    again = store.get_project("p")
    assert again.created_at.tzinfo is not None and again.created_at.utcoffset().total_seconds() == 0
    assert abs((again.created_at - project.created_at).total_seconds()) < 1e-3


def test_import_is_one_transaction(store, tmp_path):
    store.create_project("p", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    good = make_sentences("s", 30, "en", seed=1)
    bad = Sentence.from_tokens("s30", "en", ["John", "visited"], ["B-PER", "B-MISC"],
                               meta={"source_file": "x.tsv", "line": 91})
    with pytest.raises(DataFormatError) as err:
        store.import_sentences("p", good + [bad], role="source", split="train")
    assert "x.tsv:91" in str(err.value) and "MISC" in str(err.value)
    assert store.counts("p")["annotations"] == 0 and store.counts("p")["sentences"] == []
    report = store.import_sentences("p", good, role="source", split="train")
    assert (report.sentences, report.labelled) == (30, 30)
    with pytest.raises(DataFormatError, match="already in project"):
        store.import_sentences("p", good[:1], role="source", split="train")
    wrong_lang = make_sentences("x", 2, "fr", seed=3)
    with pytest.raises(DataFormatError, match="must be in de"):
        store.import_sentences("p", wrong_lang, role="target", split="pool")
    orphan = make_sentences("t", 1, "de", seed=4, meta_fn=lambda i: {"source_id": "nope"})
    with pytest.raises(DataFormatError, match="not in the project"):
        store.import_sentences("p", orphan, role="translation", split="train")
    assert store.counts("p")["annotations"] == 30


def test_cli_import_rolls_back_on_a_bad_line(tmp_path, monkeypatch, capsys):
    from concner.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    lines = []
    for s in make_sentences("s", 20, "en", seed=5):
        lines += [f"{t}\t{g}" for t, g in zip(s.tokens, s.tags)] + [""]
    good = tmp_path / "en.tsv"
    good.write_text("\n".join(lines), "utf-8")
    broken = list(lines)
    broken[-3] = "Paris\tI-ORG" if broken[-4].endswith("\tO") else broken[-3]
    broken.insert(len(broken) - 1, "Smith\tI-ORG")  # I-ORG after a non-ORG tag: invalid IOB2
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(broken), "utf-8")
    assert main(["project", "create", "demo", "--source", "en", "--targets", "de,es",
                 "--encoder", "enc"]) == 0
    assert main(["project", "import", "demo", str(bad), "--role", "source", "--split", "train",
                 "--lang", "en"]) == 2
    assert "bad.tsv:" in capsys.readouterr().err
    assert Store(url).counts("demo")["annotations"] == 0
    assert main(["project", "import", "demo", str(good), "--role", "source", "--split", "train",
                 "--lang", "en"]) == 0
    assert Store(url).counts("demo")["annotations"] == 20
    assert main(["project", "status", "demo"]) == 0
    assert "20 labelled" in capsys.readouterr().out


class _A:
    def __init__(self, id, tags, author, origin="argilla"):
        self.id, self.tags, self.author, self.origin = id, tags, author, origin


def test_current_label_latest_majority_and_agreement():
    assert current_label([]) is None
    one = current_label([_A(1, ["O"], "imp", "import"), _A(2, ["B-PER"], "imp", "import")])
    assert one.tags == ["B-PER"] and one.agreement == 1.0 and one.n_voters == 1
    # a person's label supersedes the import
    cur = current_label([_A(1, ["O"], "imp", "import"), _A(2, ["B-LOC"], "ann")])
    assert cur.tags == ["B-LOC"] and cur.annotation_id == 2
    # two of three annotators agree; the third's newer label does not win
    votes = [_A(3, ["B-PER"], "a"), _A(4, ["B-PER"], "b"), _A(5, ["B-ORG"], "c")]
    cur = current_label(votes)
    assert cur.tags == ["B-PER"] and cur.n_voters == 3 and cur.agreement == pytest.approx(2 / 3)
    # each author counts once (their latest); a tie goes to the most recent vote
    cur = current_label([_A(6, ["O"], "a"), _A(7, ["B-ORG"], "a"), _A(8, ["B-PER"], "b")])
    assert cur.tags == ["B-PER"] and cur.agreement == 0.5


def test_annotation_versions_are_kept(store):
    store.create_project("p", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "LOC"], encoder="enc")
    store.import_sentences("p", [Sentence.from_tokens("t1", "de", ["John", "Paris"])],
                           role="target", split="pool")
    assert store.sentences("p", labelled=True) == []
    store.add_annotation("p", "t1", ["B-PER", "O"], author="a")
    store.add_annotation("p", "t1", ["B-PER", "B-LOC"], author="a", origin="correction")
    store.add_annotation("p", "t1", ["B-PER", "B-LOC"], author="b")
    with pytest.raises(LabelSchemaError):
        store.add_annotation("p", "t1", ["B-PER"], author="c")
    (sent,) = store.sentences("p", labelled=True)
    assert sent.tags == ["B-PER", "B-LOC"] and sent.meta["agreement"] == 1.0
    assert store.annotation_count("p") == 3


def test_duplicate_project_is_refused(store):
    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="enc")
    with pytest.raises(StoreConflict):
        store.create_project("p", source_lang="en", target_langs=["es"], entity_types=["PER"],
                             encoder="enc")


def test_retrain_requests_coalesce_and_lock_is_exclusive(store):
    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="enc")
    first, created = store.request_run("p")
    assert created and store.request_run("p") == (first, False)
    assert store.acquire_retrain(first, "w1")
    assert not store.acquire_retrain(first, "w2")  # no longer queued
    follow, created = store.request_run("p")
    assert created and follow != first
    assert [store.request_run("p") for _ in range(3)] == [(follow, False)] * 3
    assert not store.acquire_retrain(follow, "w2")  # the lock is held by `first`
    assert store.release_retrain(first) == follow
    assert store.acquire_retrain(follow, "w2")
    assert store.get_run(follow).status == "running"
    assert store.pending_retrains() == []


def test_concurrent_requests_make_one_run(store):
    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="enc")
    results, barrier = [], threading.Barrier(4)

    def request():
        barrier.wait()
        results.append(store.request_run("p"))

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({run for run, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_stale_lock_is_recovered(store):
    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="enc")
    run, _ = store.request_run("p")
    assert store.acquire_retrain(run, "dead-worker")
    assert store.recover_stale(stale_seconds=30) == []  # fresh heartbeat: not stale
    time.sleep(0.3)
    (rec,) = store.recover_stale(stale_seconds=0.2)
    assert rec.lost_run_id == run and rec.project == "p"
    lost = store.get_run(run)
    assert lost.status == "failed" and "heartbeat" in lost.error
    assert store.get_run(rec.queued_run_id).retry_of == run
    assert store.pending_retrains() == [("p", rec.queued_run_id)]
    assert store.pending_retrains(older_than=60) == []  # just queued: its message is fresh


def test_a_run_queued_while_the_lost_one_ran_takes_it_over(store):
    """One queued retrain per project: when one was queued while the lost run trained, it
    becomes the lost run's retry (so the lost run's chain ends in a run that finishes)."""
    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="enc")
    lost, _ = store.request_run("p", full=True)
    assert store.acquire_retrain(lost, "dead-worker")
    queued, created = store.request_run("p")
    assert created and store.get_run(queued).retry_of is None
    (rec,) = store.recover_stale(stale_seconds=30, dead_owners={"dead-worker"})
    assert rec.queued_run_id == queued and store.get_run(queued).retry_of == lost
    assert store.get_run(queued).force_full  # the lost run was a full retrain
    assert "died (its process is gone)" in store.get_run(lost).error


def test_cancel_queued_and_running(store, tmp_path):
    from concner.config import load_config
    from concner.jobs.context import JobContext
    from concner.jobs.registry import ModelRegistry
    from concner.jobs.retrain import execute_retrain

    slow = {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": 200}}
    make_project(store, "p", tiny_encoder(tmp_path), training=slow)
    queued, _ = store.request_run("p")
    assert store.cancel_run(queued) == "cancelled"
    assert store.pending_retrains() == [] and store.lock_state("p").queued_run_id is None

    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                     "w")
    run, _ = store.request_run("p")
    out = {}
    worker = threading.Thread(target=lambda: out.update(status=execute_retrain(ctx, "p", run)))
    worker.start()
    deadline = time.time() + 60
    while (store.get_run(run).progress or {}).get("stage") != "stage1":
        assert time.time() < deadline and worker.is_alive()
        time.sleep(0.05)
    assert store.cancel_run(run) == "running"
    worker.join(60)
    final = store.get_run(run)
    assert out["status"] == final.status == "cancelled" and final.finished_at is not None
    assert store.model_versions("p") == [] and store.lock_state("p").run_id is None


def test_sync_without_a_source_is_recorded(store):
    from concner.config import load_config
    from concner.jobs.sync_hooks import NO_SYNC_DATASET, SyncHooks, SyncReport, run_sync

    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="enc")
    hooks = SyncHooks()
    assert run_sync(store, "p", load_config(env={}), hooks) == []
    state = store.get_sync_state("p", NO_SYNC_DATASET)
    assert state.status == "unconfigured" and state.last_sync_at.tzinfo is not None
    hooks.register("fake", lambda st, name, cfg: [SyncReport("ds1", n_new=3, cursor="c9")])
    assert run_sync(store, "p", load_config(env={}), hooks)[0]["n_new"] == 3
    state = store.get_sync_state("p", "ds1")
    assert (state.status, state.cursor) == ("ok", "c9")
