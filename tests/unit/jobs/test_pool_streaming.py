"""The pool prediction streams the pool: chunk by chunk it predicts, scores and stores, then
orders each pool from the stored scores. Ranks must equal what ranking the whole pool at
once (``rank_pool``, the job's code before streaming) gives on the same model; a second
run predicts only new or changed sentences; the store is never asked for more than one
chunk of pool sentences at a time."""

from __future__ import annotations

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


def test_a_second_run_predicts_only_new_and_changed_sentences(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    make_project(store, "p", tiny_encoder(tmp_path), n_pool=30)
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                     "test-worker")
    run, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", run) == "succeeded", store.get_run(run).error
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
