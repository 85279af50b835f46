"""Pool ranking after a retrain: the pool prediction stores the configured active-learning
strategy's score per sentence (teacher/student uses the stage-1 teacher saved with a
distilled model, and falls back to MNLP with a note without one), a promotion runs the
prediction before the Argilla sync, and the sync pushes in the stored order."""

from __future__ import annotations

import pytest
import torch
from storekit import TINY_TRAINING, make_project, tiny_encoder

from concner.active import get_strategy, rank, score_pool
from concner.argilla.client import dataset_name
from concner.argilla.records import PullResult, PushReport
from concner.argilla.sync import sync_project
from concner.config import load_config
from concner.jobs.context import JobContext
from concner.jobs.predict import execute_predict
from concner.jobs.registry import TEACHER_DIR, ModelRegistry
from concner.jobs.retrain import execute_retrain
from concner.method.inference import Predictor
from concner.store import Store
from concner.store.snapshot import take_snapshot

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("enc"))


@pytest.fixture
def store(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield st
    st.close()


def _training(strategy: str, kd: bool = False) -> dict:
    return {**TINY_TRAINING, "active": {"strategy": strategy, "mc_passes": 3},
            "training": {**TINY_TRAINING["training"], "epochs": 2, "kd_epochs": 1 if kd else 0},
            "loss": {**TINY_TRAINING["loss"], "kd": kd}}


def _ctx(store, tmp_path) -> JobContext:
    return JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                      "test-worker")


def _retrain_and_predict(ctx, name: str = "p") -> int:
    run, _ = ctx.store.request_run(name)
    assert execute_retrain(ctx, name, run) == "succeeded", ctx.store.get_run(run).error
    pred, _ = ctx.store.request_run(name, kind="predict")
    assert execute_predict(ctx, name, pred) == "succeeded", ctx.store.get_run(pred).error
    return pred


def _stored_order(store, mv_id: int) -> tuple[list[str], dict[str, float], set]:
    ids = {s.meta["db_id"]: s.id for s in store.sentences("p", role="target")}
    rows = store.predictions(mv_id)
    scores = {ids[r.sentence_id]: r.al_score for r in rows}
    order = sorted(scores, key=lambda sid: (-round(scores[sid], 9), sid))
    return order, scores, {r.al_strategy for r in rows}


def _direct(ctx, strategy: str, *, teacher=None):
    """The strategy called directly on the active model's outputs over the pool."""
    bundle, mv = ctx.registry.load_active("p")
    pool = take_snapshot(ctx.store, "p").unlabelled_target
    strat = get_strategy(strategy)
    outputs = score_pool(Predictor(bundle, device="cpu"), pool, strat, mc_passes=3,
                         teacher=teacher, seed=ctx.config.training.seed)
    scores = strat.scores(outputs, seed=ctx.config.training.seed)
    return mv, [s.sentence_id for s in rank(outputs, scores, len(pool))], \
        dict(zip(outputs.sentence_ids, scores))


def test_predict_stores_the_configured_strategys_scores_in_its_order(store, tmp_path, encoder):
    make_project(store, "p", encoder, n_pool=16, training=_training("margin"))
    ctx = _ctx(store, tmp_path)
    _retrain_and_predict(ctx)
    mv, expected_order, expected = _direct(ctx, "margin")
    order, scores, strategies = _stored_order(store, mv.id)
    assert strategies == {"margin"}
    assert scores == pytest.approx(expected, abs=1e-6)
    assert order == expected_order
    # a different strategy really gives a different order on this pool (the test can fail)
    _, mnlp_order, _ = _direct(ctx, "mnlp")
    assert mnlp_order != expected_order or len(set(scores.values())) == 1


def test_diversity_stores_batches_in_rank_order_and_the_sync_pushes_them_so(store, tmp_path,
                                                                           encoder):
    training = _training("diversity")
    training["active"] = {**training["active"], "batch_size": 4}
    make_project(store, "p", encoder, n_pool=16, training=training)
    ctx = _ctx(store, tmp_path)
    _retrain_and_predict(ctx)
    bundle, mv = ctx.registry.load_active("p")
    pool = take_snapshot(store, "p").unlabelled_target
    strategy = get_strategy("diversity")
    outputs = score_pool(Predictor(bundle, device="cpu"), pool, strategy, mc_passes=3,
                         seed=ctx.config.training.seed)
    expected = strategy.order(outputs, 4, seed=ctx.config.training.seed)
    ids = {s.meta["db_id"]: s.id for s in store.sentences("p", role="target")}
    rows = store.predictions(mv.id)
    assert {r.al_strategy for r in rows} == {"diversity/mnlp"}
    by_rank = [ids[r.sentence_id] for r in sorted(rows, key=lambda r: r.al_rank)]
    assert by_rank == expected and sorted(r.al_rank for r in rows) == list(range(1, 17))
    # the stored scores are the base strategy's, whose order is not the diverse one
    by_score, _, _ = _stored_order(store, mv.id)
    assert by_score != by_rank
    io = RecordingIO()
    sync_project(store, "p", io)
    assert io.pushed[dataset_name("p", "target", "de")] == by_rank


def test_the_source_pool_is_ranked_on_its_own_and_pushed_with_suggestions(store, tmp_path,
                                                                         encoder):
    make_project(store, "p", encoder, n_pool=6, n_source_pool=9, training=_training("margin"))
    ctx = _ctx(store, tmp_path)
    pred = _retrain_and_predict(ctx)
    bundle, mv = ctx.registry.load_active("p")
    snap = take_snapshot(store, "p")
    assert len(snap.unlabelled_source) == 9 and len(snap.source) == 40  # gold stays training data
    outputs = score_pool(Predictor(bundle, device="cpu"), snap.unlabelled_source, "margin",
                         mc_passes=3)
    expected = get_strategy("margin").order(outputs, 20)
    ids = {s.meta["db_id"]: s.id for s in store.sentences("p", role="source")}
    rows = {ids[r.sentence_id]: r for r in store.predictions(mv.id) if r.sentence_id in ids}
    assert sorted(rows, key=lambda sid: rows[sid].al_rank) == expected
    assert sorted(r.al_rank for r in rows.values()) == list(range(1, 10))  # its own 1..n
    assert "predicted 6 target and 9 source sentences" in "\n".join(
        store.get_run(pred).progress["log"])
    io = RecordingIO()
    sync_project(store, "p", io)
    assert io.pushed[dataset_name("p", "source", "en")] == expected
    assert io.suggested_by[dataset_name("p", "source", "en")] == f"v{mv.version}"
    # pre-annotations
    assert set(io.predictions[dataset_name("p", "source", "en")]) == set(expected)


def test_teacher_student_uses_the_saved_stage1_teacher(store, tmp_path, encoder):
    make_project(store, "p", encoder, n_pool=12, training=_training("teacher_student", kd=True))
    ctx = _ctx(store, tmp_path)
    _retrain_and_predict(ctx)
    mv = store.active_model_version("p")
    assert (ctx.registry.local_folder(mv) / TEACHER_DIR).is_dir()
    teacher = ctx.registry.load_teacher(mv)
    student, _ = ctx.registry.load_active("p")
    # the teacher is the stage-1 model: distillation moved the student away from it
    diff = sum(float((a - b).detach().abs().sum()) for a, b in zip(
        teacher.model.parameters(), student.model.parameters()))
    assert diff > 0
    _, expected_order, expected = _direct(ctx, "teacher_student",
                                          teacher=Predictor(teacher, device="cpu"))
    order, scores, strategies = _stored_order(store, mv.id)
    assert strategies == {"teacher_student"}
    assert scores == pytest.approx(expected, abs=1e-6) and order == expected_order
    assert all(x > 0 for x in scores.values())  # disagreement, not a constant fallback


def test_teacher_student_without_distillation_falls_back_to_mnlp_and_says_so(store, tmp_path,
                                                                            encoder):
    make_project(store, "p", encoder, n_pool=12, training=_training("teacher_student", kd=False))
    ctx = _ctx(store, tmp_path)
    pred = _retrain_and_predict(ctx)
    mv = store.active_model_version("p")
    assert ctx.registry.load_teacher(mv) is None
    _, expected_order, expected = _direct(ctx, "mnlp")
    order, scores, strategies = _stored_order(store, mv.id)
    assert strategies == {"mnlp"} and order == expected_order
    assert scores == pytest.approx(expected, abs=1e-6)
    log = "\n".join(store.get_run(pred).progress["log"])
    assert "teacher_student" in log and "ranked with 'mnlp' instead" in log


class RecordingIO:
    """An ArgillaIO stand-in: records what each push sent, in order; pulls nothing."""

    def __init__(self):
        self.pushed: dict[str, list[str]] = {}
        self.suggested_by: dict[str, str | None] = {}
        self.predictions: dict[str, dict] = {}
        self.stats = {"requests": 0, "records_read": 0}

    def dataset_id(self, name) -> str:
        return name

    def dataset_exists(self, name) -> bool:
        return name in self.pushed

    def ensure_dataset(self, project, role, lang, labels, *, min_submitted=1) -> str:
        return dataset_name(project, role, lang)

    def push(self, name, sentences, predictions=None, *, model_version=None, max_new=None, **kw):
        if kw.get("only_existing"):  # the sync's update of records further down the order
            return PushReport(name)
        self.pushed[name] = [s.id for s in sentences][:max_new]
        self.suggested_by[name] = model_version
        self.predictions[name] = dict(predictions or {})
        return PushReport(name, created=len(self.pushed[name]))

    def pull(self, name, sentences, since=None, **kw) -> PullResult:
        return PullResult(name, cursor="c")


def test_promotion_predicts_before_the_sync_which_pushes_in_strategy_order(store, tmp_path,
                                                                           encoder, monkeypatch):
    from concner.jobs import queue as tasks
    from concner.jobs.sync_hooks import SyncHooks

    make_project(store, "p", encoder, n_pool=14, training=_training("least_confidence"))
    ctx = _ctx(store, tmp_path)
    chain = tasks.worker_chain()
    ctx.after_promotion, ctx.after_predict = chain.after_promotion, chain.after_predict
    io, seen = RecordingIO(), []

    def hook(store_, project, config):
        mv = store_.active_model_version(project)
        seen.append((mv.version, len(store_.predictions(mv.id))))
        sync_project(store_, project, io)
        return []

    monkeypatch.setattr(tasks, "SYNC_HOOKS", SyncHooks({"recording": hook}))
    with tasks.running_here(ctx):
        run, _ = tasks.request_retrain(store, "p")
        assert store.get_run(run).status == "succeeded", store.get_run(run).error
    (predict,) = store.runs("p", kind="predict")
    assert predict.status == "succeeded"
    # the sync ran once, after the new model's pool predictions were stored
    mv = store.active_model_version("p")
    assert seen == [(mv.version, 14)]
    _, expected_order, _ = _direct(ctx, "least_confidence")
    pushed = io.pushed[dataset_name("p", "target", "de")]
    assert pushed == expected_order
    assert io.suggested_by[dataset_name("p", "target", "de")] == f"v{mv.version}"
