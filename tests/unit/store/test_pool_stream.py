"""Streaming a pool on SQLite and PostgreSQL (CONCNER_TEST_POSTGRES_URL): the unlabelled
pool read chunk by chunk in id order (what ``take_snapshot`` lists), the stored
predictions a pool prediction may keep, and the ranks written in one bulk UPDATE."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from storekit import BACKENDS, make_sentences, open_store

from concner.errors import ConfigError
from concner.store.model_versions import SentenceRow
from concner.store.pool_stream import input_hash
from concner.store.snapshot import take_snapshot


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with open_store(request.param, tmp_path) as st:
        _fill(st)
        yield st


def _fill(st) -> None:
    st.create_project("demo", source_lang="en", target_langs=["de"],
                      entity_types=["PER", "ORG", "LOC"], encoder="enc")
    st.import_sentences("demo", make_sentences("gold", 4, "de", seed=1), role="target",
                        split="train")
    st.import_sentences("demo", make_sentences("dev", 3, "de", seed=2), role="target",
                        split="dev")
    st.import_sentences("demo", make_sentences("pool", 11, "de", seed=3, labelled=False),
                        role="target", split="pool")
    st.import_sentences("demo", make_sentences("src", 5, "en", seed=4, labelled=False),
                        role="source", split="pool")
    st.add_annotation("demo", "pool2", ["O"] * len(st.sentences("demo", split="pool")[2].tokens),
                      author="ann")


def _ids(chunks) -> list[list[str]]:
    return [[x.id for x in part] for part in chunks]


def _whole(store, role: str = "target") -> list:
    return list(itertools.chain.from_iterable(
        store.pool_chunks("demo", role, 100, store.pool_bound("demo"))))


def test_pool_chunks_list_the_snapshots_pools_in_order_a_chunk_at_a_time(store):
    upto = store.pool_bound("demo")
    snap = take_snapshot(store, "demo")
    target = _ids(store.pool_chunks("demo", "target", 4, upto))
    assert [len(part) for part in target] == [4, 4, 2]  # 11 minus the labelled one
    assert list(itertools.chain(*target)) == [x.id for x in snap.unlabelled_target]
    assert [x.id for x in _whole(store, "source")] == [x.id for x in snap.unlabelled_source]
    assert store.pool_size("demo", "target", upto) == 10
    # sentences imported after the bound are not part of this pool prediction
    store.import_sentences("demo", make_sentences("late", 2, "de", seed=5, labelled=False),
                           role="target", split="pool")
    assert store.pool_size("demo", "target", upto) == 10
    assert store.pool_size("demo", "target", store.pool_bound("demo")) == 12
    with pytest.raises(ConfigError, match="chunk"):
        next(store.pool_chunks("demo", "target", 0, upto))
    with pytest.raises(ConfigError, match="target, source"):
        store.pool_size("demo", "translation", upto)


def test_reusable_predictions_need_the_same_version_strategy_and_input(store):
    run_id, _ = store.request_run("demo")
    mv = store.add_model_version("demo", run_id=run_id, path="/m", mean_f1=0.5, version=1)
    other = store.add_model_version("demo", run_id=run_id, path="/m2", mean_f1=0.5, version=2)
    pool = _whole(store)
    rows = [(x.meta["db_id"], ["O"] * len(x.tokens), [], 0.1, 0.5 + i / 100, None)
            for i, x in enumerate(pool)]
    hashes = {x.meta["db_id"]: input_hash(x) for x in pool}
    store.save_predictions(mv.id, rows, strategy="mnlp", input_hashes=hashes)
    store.save_predictions(other.id, rows[:3], strategy="mnlp")  # no hashes: never reused
    kept = store.reusable_predictions(mv.id, "mnlp", pool)
    assert set(kept) == set(hashes)
    assert kept[pool[1].meta["db_id"]].al_score == pytest.approx(0.51)
    assert kept[pool[1].meta["db_id"]].n_words == len(pool[1].tokens)
    assert store.reusable_predictions(mv.id, "margin", pool) == {}
    assert store.reusable_predictions(other.id, "mnlp", pool) == {}
    with store.write() as s:  # an edited sentence is predicted again
        row = s.get(SentenceRow, pool[0].meta["db_id"])
        row.tokens, row.text, row.offsets = ["Paris"], "Paris", [[0, 5]]
    fresh = _whole(store)
    assert set(store.reusable_predictions(mv.id, "mnlp", fresh)) == set(hashes) - {
        pool[0].meta["db_id"]}


def test_save_ranks_updates_every_row_with_one_statement_per_500(store):
    run_id, _ = store.request_run("demo")
    mv = store.add_model_version("demo", run_id=run_id, path="/m", mean_f1=0.5, version=1)
    pool = _whole(store)
    ids = [x.meta["db_id"] for x in pool]
    store.save_predictions(mv.id, [(i, ["O"], [], 0.1, 0.3, None) for i in ids], strategy="random")
    statements = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda *args: statements.append(args[2]) if "UPDATE" in args[2] else None)
    ranks = [(sid, len(ids) - k, k / 10) for k, sid in enumerate(ids)]
    assert store.save_ranks(mv.id, ranks, scores=True) == len(ids)
    assert len(statements) == 1 and "VALUES" in statements[0]
    stored = {r.sentence_id: (r.al_rank, r.al_score) for r in store.predictions(mv.id)}
    assert stored == {sid: (rank, pytest.approx(score)) for sid, rank, score in ranks}
    store.save_ranks(mv.id, [(ids[0], 99, None)])  # ranks alone keep the scores
    assert {r.sentence_id: r.al_score for r in store.predictions(mv.id)}[ids[0]] == 0.0
