"""The pool prediction streams the pool: chunk by chunk it predicts, scores and stores, then
orders each pool from the stored scores. Ranks must equal what ranking the whole pool at
once (``rank_pool``, the job's code before streaming) gives on the same model; a second
run predicts only new or changed sentences; the store is never asked for more than one
chunk of pool sentences at a time."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa
import torch
from storekit import TINY_TRAINING, make_project, make_sentences, tiny_encoder

from concner.active.ranking import needs_representations, rank_pool
from concner.config import load_config
from concner.jobs.context import JobContext, project_config
from concner.jobs.predict import execute_predict
from concner.jobs.registry import ModelRegistry
from concner.jobs.retrain import execute_retrain
from concner.method.inference import Predictor
from concner.store import Store
from concner.store.model_versions import SentenceRow
from concner.store.snapshot import take_snapshot

torch.set_num_threads(1)

CHUNK = 7  # smaller than both pools, and not a divisor of them: a short last chunk
STRATEGIES = ["random", "least_confidence", "mnlp", "margin", "max_entropy", "mean_entropy",
              "teacher_student", "diversity", "diversity/random", "diversity/small-limit"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project (40 target and 12 source pool sentences) and a distilled tiny model, so
    the teacher/student strategy has its teacher."""
    tmp = tmp_path_factory.mktemp("streaming")
    store = Store(f"sqlite:///{tmp / 'store.db'}")
    training = {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": 2,
                                              "kd_epochs": 1},
                "loss": {**TINY_TRAINING["loss"], "kd": True}}
    make_project(store, "p", tiny_encoder(tmp), n_pool=40, n_source_pool=12, training=training)
    ctx = JobContext(store, ModelRegistry(store, str(tmp / "models")), load_config(env={}),
                     "test-worker")
    run, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", run) == "succeeded", store.get_run(run).error
    yield ctx
    store.close()


def _set_strategy(ctx, name: str) -> None:
    """Configure the project's ``[active]`` section for one of :data:`STRATEGIES`."""
    store = ctx.store
    active = {"strategy": name, "mc_passes": 3, "batch_size": 4}
    if name.startswith("diversity/"):
        variant = name.split("/", 1)[1]
        active["strategy"] = "diversity"
        if variant == "random":
            active["diversity_base"] = "random"
        else:  # 8 ordered batch by batch: candidates_needed = 8 + 4 x 4 = 24 < 40
            active["diversity_order_limit"] = 8
    config = dict(store.get_project("p").training_config)
    config["active"] = active
    store.update_training_config("p", config)


def _predict(ctx, chunk: int = CHUNK) -> int:
    run, _ = ctx.store.request_run("p", kind="predict")
    assert execute_predict(ctx, "p", run, chunk=chunk) == "succeeded", ctx.store.get_run(run).error
    return run


def _today(ctx, role: str):
    """What the job stored before streaming: the whole pool predicted (in chunks of 256)
    and ranked at once by ``rank_pool``; sentence id -> (score, rank)."""
    bundle, mv = ctx.registry.load_active("p")
    snap = take_snapshot(ctx.store, "p")
    active = project_config(ctx.config, snap).active
    pool = snap.unlabelled_target if role == "target" else snap.unlabelled_source
    tc = ctx.config.training
    predictor = Predictor(bundle, batch_size=tc.eval_batch_size, device=tc.device)
    teacher = ctx.registry.load_teacher(mv)
    preds, emb = predictor.predict_in_chunks(pool, chunk=256,
                                             embeddings=needs_representations(active))
    ranking = rank_pool(predictor, pool, preds, active, seed=tc.seed,
                        teacher=None if teacher is None else Predictor(teacher, tc.eval_batch_size,
                                                                       tc.device),
                        representations=emb)
    return ranking, {sid: (ranking.scores[sid], ranking.ranks[sid]) for sid in ranking.scores}


def _stored(ctx, role: str) -> tuple[dict[str, tuple[float, int]], set[str]]:
    """Sentence id -> (stored score, stored rank) of the ``role`` pool, and the strategies."""
    mv = ctx.store.active_model_version("p")
    pool = {s.meta["db_id"]: s.id for s in ctx.store.sentences("p", role=role, labelled=False)
            if s.meta["split"] != "dev"}
    rows = [r for r in ctx.store.predictions(mv.id) if r.sentence_id in pool]
    return ({pool[r.sentence_id]: (r.al_score, r.al_rank) for r in rows},
            {r.al_strategy for r in rows})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_streamed_ranks_and_scores_equal_ranking_the_whole_pool(trained, strategy):
    _set_strategy(trained, strategy)
    _predict(trained)
    for role in ("target", "source"):
        ranking, expected = _today(trained, role)
        stored, names = _stored(trained, role)
        assert names == {ranking.strategy}
        assert set(stored) == set(expected)
        assert {sid: r for sid, (_, r) in stored.items()} == \
            {sid: r for sid, (_, r) in expected.items()}
        assert {sid: s for sid, (s, _) in stored.items()} == \
            pytest.approx({sid: s for sid, (s, _) in expected.items()}, abs=1e-6)
    if strategy.startswith("diversity"):  # the diverse order is not the score order here
        by_score = sorted(stored, key=lambda sid: (-round(stored[sid][0], 9), sid))
        by_rank = sorted(stored, key=lambda sid: stored[sid][1])
        assert by_score != by_rank


def test_bald_streamed_equals_whole_pool_when_one_chunk_holds_it_and_is_stable(trained):
    """BALD's MC-dropout masks depend on which sentences share a batch, so only a single
    chunk reproduces the whole-pool scores exactly; smaller chunks give valid (>= 0),
    repeatable scores and a complete order."""
    _set_strategy(trained, "bald")
    _predict(trained, chunk=1000)
    _, expected = _today(trained, "target")
    stored, names = _stored(trained, "target")
    assert names == {"bald"}
    assert {k: v[1] for k, v in stored.items()} == {k: v[1] for k, v in expected.items()}
    assert {k: v[0] for k, v in stored.items()} == \
        pytest.approx({k: v[0] for k, v in expected.items()}, abs=1e-6)
    _set_strategy(trained, "mnlp")  # invalidate, then BALD again in chunks of 7, twice
    _predict(trained)
    runs = []
    for _ in range(2):
        _set_strategy(trained, "mnlp")
        _predict(trained)
        _set_strategy(trained, "bald")
        _predict(trained)
        runs.append(_stored(trained, "target")[0])
    assert runs[0] == runs[1]
    assert sorted(r for _, r in runs[0].values()) == list(range(1, 41))
    assert all(s >= 0 for s, _ in runs[0].values())


class _Counting:
    """Wraps the job's predictor class: counts the sentences each ``predict`` call gets."""

    def __init__(self, monkeypatch):
        self.sentences: list[str] = []
        original = Predictor.predict

        def predict(predictor, sentences):
            self.sentences += [x.id for x in sentences]
            return original(predictor, sentences)

        monkeypatch.setattr(Predictor, "predict", predict)


def _trained_project(tmp_path, n_pool: int) -> tuple[Store, JobContext]:
    """A project with ``n_pool`` target pool sentences and a retrained tiny model."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    make_project(store, "p", tiny_encoder(tmp_path), n_pool=n_pool)
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                     "test-worker")
    run, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", run) == "succeeded", store.get_run(run).error
    return store, ctx


def test_a_second_run_predicts_only_new_and_changed_sentences(tmp_path, monkeypatch):
    store, ctx = _trained_project(tmp_path, 30)
    _set_strategy(ctx, "diversity/small-limit")  # diversity, candidates fewer than the pool
    _predict(ctx)
    before, _ = _stored(ctx, "target")
    # k = 5 new sentences, one edited in place, one labelled (it leaves the pool)
    store.import_sentences("p", make_sentences("new-", 5, "de", seed=99, labelled=False),
                           role="target", split="pool")
    edited = "pool-de-3"
    new_tokens = ["Berlin", "Paris", "London", "Microsoft", "Google"]
    with store.write() as s:
        row = s.scalar(sa.select(SentenceRow).where(SentenceRow.external_id == edited))
        row.tokens, row.text = new_tokens, " ".join(new_tokens)
        offsets, at = [], 0
        for tok in new_tokens:
            offsets.append([at, at + len(tok)])
            at += len(tok) + 1
        row.offsets = offsets
    store.add_annotation("p", "pool-de-0", ["O"] * len(store.sentences(
        "p", role="target", labelled=False)[0].tokens), author="ann")
    counting = _Counting(monkeypatch)
    run = _predict(ctx)
    assert sorted(counting.sentences) == sorted([f"new-{i}" for i in range(5)] + [edited])
    assert "kept 28 stored predictions" in "\n".join(store.get_run(run).progress["log"])
    stored, _ = _stored(ctx, "target")
    _, expected = _today(ctx, "target")
    assert {k: v[1] for k, v in stored.items()} == {k: v[1] for k, v in expected.items()}
    assert stored[edited][0] == pytest.approx(expected[edited][0], abs=1e-6)
    assert abs(stored[edited][0] - before[edited][0]) > 1e-5  # a fresh score, not noise (~1e-8)
    assert "pool-de-0" not in stored and len(stored) == 34
    # a changed strategy invalidates every stored score
    _set_strategy(ctx, "margin")
    counting.sentences.clear()
    _predict(ctx)
    assert len(counting.sentences) == 34
    store.close()


def test_the_job_never_reads_more_than_a_chunk_of_pool_sentences(trained, monkeypatch):
    from concner.store import snapshot

    store = trained.store
    streamed: list[int] = []
    read_back: list[int] = []
    chunks, by_id = store.pool_chunks, store.sentences_by_id

    def pool_chunks(*args, **kwargs):
        for part in chunks(*args, **kwargs):
            streamed.append(len(part))
            yield part

    def sentences_by_id(name, ids):
        got = by_id(name, ids)
        read_back.append(len(got))
        return got

    def no_snapshot(*args, **kwargs):
        raise AssertionError("the pool prediction loaded the whole project")

    monkeypatch.setattr(store, "pool_chunks", pool_chunks)
    monkeypatch.setattr(store, "sentences_by_id", sentences_by_id)
    monkeypatch.setattr(snapshot, "take_snapshot", no_snapshot)
    _set_strategy(trained, "diversity")  # reads its candidates back too
    _predict(trained, chunk=5)
    assert sum(streamed) == 40 + 12 and max(streamed) == 5
    assert sum(read_back) == 40 + 12 and max(read_back) == 5  # whole pools: limit 1000


# -- shards (concner/jobs/predict.py): the pool cut into id ranges ----------------------
def _sharded(ctx, sentences: int) -> JobContext:
    """``ctx`` with pool shards of ``sentences`` sentences (a whole number of chunks)."""
    config = load_config(env={"CONCNER_SERVICES__POOL_SHARD_SENTENCES": str(sentences)})
    return dataclasses.replace(ctx, config=config)


def _payloads_and_results(store, run: int) -> list:
    return [(s.payload, s.result) for s in store.shards(run)]


@pytest.mark.parametrize("strategy", ["mnlp", "random", "teacher_student", "diversity"])
def test_a_pool_in_several_shards_ranks_exactly_as_the_whole_pool(trained, strategy):
    """Shards of 14 (2 chunks of 7): the target pool of 40 in 3 id ranges, the source pool
    of 12 in 1; every sentence is in exactly one shard, and the stored scores and ranks
    equal ranking the whole pool at once."""
    _set_strategy(trained, strategy)
    run = _predict(_sharded(trained, 14))
    shards = _payloads_and_results(trained.store, run)
    assert [(p["role"], len(r["db_ids"])) for p, r in shards] == \
        [("target", 14), ("target", 14), ("target", 12), ("source", 12)]
    for (p, r) in shards:  # each range holds exactly its sentences, in id order
        assert all(p["after"] < i <= p["through"] for i in r["db_ids"])
        assert r["db_ids"] == sorted(r["db_ids"]) and r["db_ids"][-1] == p["through"]
    ids = [i for _, r in shards for i in r["db_ids"]]
    assert len(ids) == len(set(ids)) == 52
    for role in ("target", "source"):
        _, expected = _today(trained, role)
        stored, _ = _stored(trained, role)
        assert {k: v[1] for k, v in stored.items()} == {k: v[1] for k, v in expected.items()}
        assert {k: v[0] for k, v in stored.items()} == \
            pytest.approx({k: v[0] for k, v in expected.items()}, abs=1e-6)
    log = "\n".join(trained.store.get_run(run).progress["log"])
    assert "in 4 shards of up to 14" in log
    assert trained.store.get_run(run).model_version_id == \
        trained.store.active_model_version("p").id


def test_shards_round_up_to_whole_chunks_so_bald_draws_as_unsharded(trained):
    """BALD depends on which sentences share a chunk: shards of 10 with chunks of 7 are
    rounded up to 14, so the chunks are the unsharded job's and so are the scores."""
    _set_strategy(trained, "bald")
    _predict(trained)  # one shard per pool, chunks of 7
    whole, _ = _stored(trained, "target")
    _set_strategy(trained, "mnlp")
    _predict(trained)  # invalidate the stored BALD scores
    _set_strategy(trained, "bald")
    run = _predict(_sharded(trained, 10))
    assert [p["role"] for p, _ in _payloads_and_results(trained.store, run)] == \
        ["target"] * 3 + ["source"]
    assert _stored(trained, "target")[0] == whole


def test_a_failed_shard_is_retried_and_keeps_what_it_had_stored(trained, monkeypatch):
    """The first attempt at a shard dies after its first chunk: the retry keeps the rows
    stored before the failure, so every sentence is predicted exactly once."""
    from concner.jobs.pool_scoring import PoolScorer

    _set_strategy(trained, "least_confidence")
    counting = _Counting(monkeypatch)
    original, calls = PoolScorer.score, []

    def score(scorer, sentences, active, seed):
        calls.append(len(sentences))
        if len(calls) == 2:
            raise RuntimeError("the worker died mid-shard")
        return original(scorer, sentences, active, seed)

    monkeypatch.setattr(PoolScorer, "score", score)
    run = _predict(_sharded(trained, 14))
    shards = trained.store.shards(run)
    assert [s.attempts for s in shards] == [2, 1, 1, 1]
    assert "the worker died mid-shard" in shards[0].error
    assert sorted(counting.sentences) == sorted(set(counting.sentences))  # none twice
    assert len(counting.sentences) == 52
    _, expected = _today(trained, "target")
    assert {k: v[1] for k, v in _stored(trained, "target")[0].items()} == \
        {k: v[1] for k, v in expected.items()}


def test_empty_pools_give_no_shards_and_the_run_succeeds(tmp_path):
    store, ctx = _trained_project(tmp_path, 0)
    run = _predict(ctx)
    assert store.shards(run) == []
    assert "both pools are empty" in "\n".join(store.get_run(run).progress["log"])
    store.close()


def test_a_run_sharded_by_an_older_worker_fails_with_what_to_do(trained, monkeypatch):
    """Before the settings were pinned on the run, each shard carried them in its payload.
    A worker upgraded while such a run is queued cannot finish it: the run fails with a
    message that names the button that queues a new one, not with a KeyError."""
    from concner.jobs import predict, shards

    real = predict._prepare

    def older_worker(ctx, run):  # what the old prepare left: settings per shard, none pinned
        payloads = real(ctx, run)
        pinned = ctx.store.get_run(run.id).config["pinned"]
        ctx.store.merge_run_config(run.id, {"pinned": None})
        return [{**p, "version": pinned["version"], "seed": pinned["seed"]} for p in payloads]

    monkeypatch.setitem(shards.WORK, "predict",
                        dataclasses.replace(predict.SHARDED_PREDICTION, prepare=older_worker))
    run, _ = trained.store.request_run("p", kind="predict")
    assert execute_predict(trained, "p", run) == "failed"
    error = trained.store.get_run(run).error
    assert "split into shards by an older worker" in error and "KeyError" not in error
    assert "'Predict the pool with the active model' on the Training page" in error
