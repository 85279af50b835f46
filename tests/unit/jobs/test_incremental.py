"""Incremental model updates: the plan (full or incremental, and why), the replay sample,
the update's training data, its settings, and the worker's runner end to end with a tiny
model on SQLite (and PostgreSQL when its test server is there): an update warm-starts from
the active model; a full retrain can be forced from the request, the job argument and the
command line."""

from __future__ import annotations

import pytest
import torch
from storekit import TINY_TRAINING, make_project, make_sentences

from concner.config import config_from_dict, load_config
from concner.errors import ConfigError, PlanError
from concner.jobs.context import JobContext
from concner.jobs.incremental import (
    ActiveModel,
    RetrainPlan,
    build_incremental_data,
    config_changes,
    incremental_config,
    plan_retrain,
    sample_replay,
)
from concner.jobs.registry import ModelRegistry
from concner.jobs.retrain import execute_retrain
from concner.store.snapshot import Snapshot, take_snapshot

torch.set_num_threads(1)


def _config(**training):
    return config_from_dict({"training": training}, env={})


def _active(trained_on, config, *, depth=0, version=3, mv_id=30) -> ActiveModel:
    return ActiveModel(mv_id, version, trained_on, depth=depth, config=config.to_dict())


OLD = {i: 1000 + i for i in range(1, 301)}  # 300 labelled sentences the model learnt from


# -- the plan --------------------------------------------------------------------------
def test_no_active_model_means_a_full_retrain_on_everything():
    plan = plan_retrain(OLD, None, _config())
    assert plan.kind == "full" and plan.replay_ids == () and plan.depth == 0
    assert plan.new_ids == tuple(sorted(OLD)) and "no active model" in plan.reason
    assert plan.base_model_version_id is None


def test_a_few_new_labels_give_an_incremental_update_from_the_active_model():
    cfg = _config(replay_size=50)
    now = {**OLD, 301: 2001, 302: 2002, 7: 2003}  # two new sentences, one corrected label
    plan = plan_retrain(now, _active(OLD, cfg, depth=1), cfg)
    assert plan.kind == "incremental"
    assert plan.new_ids == (7, 301, 302)  # the corrected one counts as new
    assert len(plan.replay_ids) == 50 and not set(plan.replay_ids) & set(plan.new_ids)
    assert set(plan.replay_ids) <= set(OLD) and list(plan.replay_ids) == sorted(plan.replay_ids)
    assert plan.base_model_version_id == 30 and plan.depth == 2
    assert "3 new" in plan.reason and "v3" in plan.reason


def test_too_many_new_labels_give_a_full_retrain():
    cfg = _config(incremental_max_new_labels=20)
    at_limit = {**OLD, **{1000 + i: i for i in range(20)}}
    assert plan_retrain(at_limit, _active(OLD, cfg), cfg).kind == "incremental"
    over = {**at_limit, 5000: 1}
    plan = plan_retrain(over, _active(OLD, cfg), cfg)
    assert plan.kind == "full" and len(plan.new_ids) == 21
    assert "training.incremental_max_new_labels = 20" in plan.reason


def test_full_retrain_every_n_updates_in_a_row():
    cfg = _config(full_retrain_every=3)
    now = {**OLD, 999: 1}
    assert plan_retrain(now, _active(OLD, cfg, depth=2), cfg).kind == "incremental"
    plan = plan_retrain(now, _active(OLD, cfg, depth=3), cfg)
    assert plan.kind == "full" and "training.full_retrain_every = 3" in plan.reason


def test_switched_off_forced_and_nothing_new_give_full_retrains():
    now = {**OLD, 999: 1}
    off = _config(incremental=False)
    assert plan_retrain(now, _active(OLD, off), off).reason == \
        "incremental updates are off (training.incremental = false)"
    on = _config()
    assert "asked for" in plan_retrain(now, _active(OLD, on), on, force_full=True).reason
    plan = plan_retrain(OLD, _active(OLD, on), on)
    assert plan.kind == "full" and plan.new_ids == ()
    assert "no labelled training sentence is new or corrected" in plan.reason


def test_unknown_history_removed_sentences_and_changed_settings_give_full_retrains():
    cfg = _config()
    now = {**OLD, 999: 1}
    assert "no record" in plan_retrain(now, _active(None, cfg), cfg).reason
    fewer = {k: v for k, v in now.items() if k != 5}
    plan = plan_retrain(fewer, _active(OLD, cfg), cfg)
    assert plan.kind == "full" and "id 5" in plan.reason
    changed = config_from_dict({"loss": {"lambda_tcl": 0.1}, "model": {"encoder": "other"}},
                               env={})
    plan = plan_retrain(now, _active(OLD, cfg), changed)
    assert plan.kind == "full" and "loss.lambda_tcl" in plan.reason \
        and "model.encoder" in plan.reason
    # settings that do not shape the model (threads, the incremental knobs) change nothing
    same = _config(num_threads=1, incremental_epochs=3, replay_size=10, device="cpu")
    assert config_changes(cfg.to_dict(), same) == []
    assert plan_retrain(now, _active(OLD, cfg), same).kind == "incremental"
    assert config_changes(None, cfg) == ["(unknown)"]
    # a model trained before a setting existed trained as with its ADDED_LATER value
    older = cfg.to_dict()
    del older["training"]["early_stop_patience"]
    assert config_changes(older, cfg) == []
    assert config_changes(older, _config(early_stop_patience=2)) == \
        ["training.early_stop_patience"]


def test_bad_plan_inputs_raise_typed_errors():
    cfg = _config()
    with pytest.raises(PlanError, match="map sentence ids"):
        plan_retrain([1, 2, 3], None, cfg)
    with pytest.raises(PlanError, match="whole numbers"):
        plan_retrain({"1": 2}, None, cfg)
    with pytest.raises(PlanError, match="active.depth"):
        plan_retrain(OLD, _active(OLD, cfg, depth=-1), cfg)
    with pytest.raises(PlanError, match="replay_size"):
        sample_replay(OLD, -1, 13)


@pytest.mark.parametrize("data,needle", [
    ({"incremental_max_new_labels": 0}, "training.incremental_max_new_labels"),
    ({"incremental_epochs": 0}, "training.incremental_epochs"),
    ({"replay_size": -1}, "training.replay_size"),
    ({"full_retrain_every": 0}, "training.full_retrain_every"),
    ({"incremental": "sometimes"}, "training.incremental must be true or false"),
])
def test_incremental_settings_are_validated_naming_the_key(data, needle):
    with pytest.raises(ConfigError, match=needle):
        config_from_dict({"training": data}, env={})


# -- the replay sample -----------------------------------------------------------------
def test_replay_sample_is_deterministic_for_a_seed_and_never_holds_new_ids():
    ids = list(range(1, 1001))
    first = sample_replay(ids, 200, seed=13, salt=1)
    assert first == sample_replay(reversed(ids), 200, seed=13, salt=1)  # order-free
    assert len(set(first)) == 200 and set(first) <= set(ids)
    assert first != sample_replay(ids, 200, seed=14, salt=1)
    assert first != sample_replay(ids, 200, seed=13, salt=2)  # next update, other sentences
    assert sample_replay(ids[:30], 200, seed=13) == tuple(ids[:30])  # fewer: all of them
    assert sample_replay(ids, 0, seed=13) == ()
    cfg = _config(replay_size=250)
    now = {**OLD, **{5000 + i: 1 for i in range(40)}, 3: 99, 4: 98}
    for depth in range(4):
        plan = plan_retrain(now, _active(OLD, cfg, depth=depth), cfg)
        assert plan == plan_retrain(dict(reversed(now.items())), _active(OLD, cfg, depth=depth),
                                    cfg)
        assert len(plan.replay_ids) == 250 and not set(plan.replay_ids) & set(plan.new_ids)
        assert {3, 4} <= set(plan.new_ids)


# -- the update's data and settings ------------------------------------------------------
def _snapshot() -> Snapshot:
    source = make_sentences("s", 6, "en", seed=1)
    gold = make_sentences("g", 3, "de", seed=2)
    trans = make_sentences("t", 6, "de", seed=3)
    dev = make_sentences("d", 2, "de", seed=4)
    unl = make_sentences("u", 4, "de", seed=5, labelled=False)
    for k, s in enumerate(source + gold):
        s.meta["db_id"] = 10 + k  # source 10..15, target gold 16..18
    from concner.labels import LabelSchema

    return Snapshot("p", LabelSchema(["PER", "ORG", "LOC"]), "en", ["de"], "enc", {},
                    source=source, pairs=[(i, t) for i, t in enumerate(trans) if i != 4],
                    target_gold=gold, unlabelled_target=unl, dev={"de": dev})


def test_update_data_holds_the_new_and_replayed_sentences_with_their_translations():
    snap = _snapshot()
    plan = RetrainPlan("incremental", (12, 17), (11, 14), "r", 1, 5)
    data = build_incremental_data(snap, plan, _config())
    assert [s.meta["db_id"] for s in data.source] == [11, 12, 14, 17]
    assert data.unlabelled_target == [] and data.dev == snap.dev
    # source 11, 12 and 14 are snapshot indexes 1, 2, 4; index 4 has no usable translation
    assert [t.id for t in data.translations] == ["t1", "t2"]
    assert data.pairs == [(0, 0), (1, 1)]
    assert build_incremental_data(snap, plan, _config(incremental_translations=False)) \
        .translations is None
    with pytest.raises(PlanError, match="whole snapshot"):
        build_incremental_data(snap, RetrainPlan("full", (), (), "r"), _config())
    with pytest.raises(PlanError, match="id 99"):
        build_incremental_data(snap, RetrainPlan("incremental", (99,), (), "r", 1, 5), _config())


def test_update_settings_are_the_incremental_epochs_without_distillation():
    cfg = config_from_dict({"training": {"epochs": 7, "kd_epochs": 3, "incremental_epochs": 2},
                            "loss": {"kd": True, "lambda_tcl": 0.3}}, env={})
    inc = incremental_config(cfg)
    assert (inc.training.epochs, inc.training.kd_epochs, inc.loss.kd) == (2, 0, False)
    assert inc.loss.lambda_tcl == 0.3 and inc.training.seed == cfg.training.seed
    assert (cfg.training.epochs, cfg.loss.kd) == (7, True)  # not modified


# -- the runner, end to end on SQLite (and PostgreSQL) -----------------------------------
@pytest.fixture()
def spy(monkeypatch):
    """Every call of concner.method.training.train: (config, data, init)."""
    import concner.method.training

    calls, real = [], concner.method.training.train

    def train(config, data, *, init=None, **kwargs):
        calls.append((config, data, init))
        return real(config, data, init=init, **kwargs)

    monkeypatch.setattr(concner.method.training, "train", train)
    return calls


def _ctx(store, tmp_path) -> JobContext:
    # promote every model: the chain of updates must not depend on a tiny model's F1
    config = load_config(env={"CONCNER_SERVICES__PROMOTE_TOLERANCE": "100"})
    return JobContext(store, ModelRegistry(store, str(tmp_path / "models"), promote_tolerance=100),
                      config, "test-worker")


def _label(store, n: int) -> list[int]:
    """An annotator labels the first ``n`` unlabelled pool sentences."""
    pool = store.sentences("p", role="target", split="pool", labelled=False)[:n]
    for sent in pool:
        store.add_annotation("p", sent.id, ["O"] * len(sent.tokens), author="ann")
    return [s.meta["db_id"] for s in pool]


def _weights(bundle) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in bundle.model.state_dict().items()}


def _retrain(ctx, **request) -> int:
    run, _ = ctx.store.request_run("p", **request)
    assert execute_retrain(ctx, "p", run) == "succeeded", ctx.store.get_run(run).error
    return run


def test_runner_updates_the_active_model_incrementally_and_retrains_fully_when_forced(
        store, tmp_path, encoder, spy):
    training = {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "replay_size": 6,
                                              "incremental_epochs": 2, "full_retrain_every": 2}}
    make_project(store, "p", encoder, n_source=15, n_dev=8, n_pool=30, training=training)
    ctx = _ctx(store, tmp_path)

    first = _retrain(ctx)
    run = store.get_run(first)
    assert (run.update_kind, run.incremental_depth, run.n_replay) == ("full", 0, 0)
    assert "no active model" in run.update_reason and spy[-1][2] is None
    v1 = store.active_model_version("p")
    labelled = take_snapshot(store, "p").label_versions
    assert store.trained_on(first) == labelled and len(labelled) == 15

    new = _label(store, 4)
    before = _weights(ctx.registry.load(v1))
    second = _retrain(ctx)
    run = store.get_run(second)
    assert run.update_kind == "incremental", run.update_reason
    assert (run.n_new_labels, run.n_replay, run.incremental_depth) == (4, 6, 1)
    assert run.base_model_version_id == v1.id and "warm start from v1" in run.update_reason
    config, data, init = spy[-1]
    assert init is not None  # warm start: the very weights of the active model
    assert all(torch.equal(before[k], v) for k, v in _weights(init).items())
    ids = [s.meta["db_id"] for s in data.source]
    assert len(ids) == 10 and set(new) <= set(ids) and data.unlabelled_target == []
    assert (config.training.epochs, config.loss.kd) == (2, False)
    assert run.label_counts["target"] == 4  # the counts: every label the model knows
    assert store.trained_on(second) == take_snapshot(store, "p").label_versions
    v2 = store.active_model_version("p")
    assert v2.run_id == second
    after = _weights(ctx.registry.load(v2))
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it did train

    _label(store, 2)
    third = store.get_run(_retrain(ctx))  # a second update in a row, from v2
    assert (third.update_kind, third.incremental_depth, third.base_model_version_id) == \
        ("incremental", 2, v2.id)
    _label(store, 1)
    fourth = store.get_run(_retrain(ctx))  # full_retrain_every = 2
    assert fourth.update_kind == "full" and "full_retrain_every = 2" in fourth.update_reason
    assert fourth.incremental_depth == 0 and spy[-1][2] is None

    # forced from the request: a full retrain although one new label would be an update
    _label(store, 1)
    run_id, _ = store.request_run("p", full=True)
    assert store.request_run("p") == (run_id, False)  # joins it, stays full
    assert execute_retrain(ctx, "p", run_id) == "succeeded"
    run = store.get_run(run_id)
    assert run.update_kind == "full" and "asked for" in run.update_reason
    config, data, init = spy[-1]
    assert init is None and len(data.source) == 15 + 4 + 2 + 1 + 1
    assert config.training.epochs == TINY_TRAINING["training"]["epochs"]

    # forced by the job argument, and a queued retrain turned full by a later request
    _label(store, 1)
    run_id, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", run_id, full=True) == "succeeded"
    assert store.get_run(run_id).update_kind == "full"
    _label(store, 1)
    queued, _ = store.request_run("p")
    assert store.request_run("p", full=True) == (queued, False)
    assert execute_retrain(ctx, "p", queued) == "succeeded"
    assert store.get_run(queued).update_kind == "full"


def test_command_line_forces_a_full_retrain(store, tmp_path, encoder, spy, monkeypatch,
                                            capsys):
    from concner.cli import main
    from concner.jobs import queue as tasks

    make_project(store, "p", encoder, n_source=12, n_dev=6, n_pool=10)
    ctx = _ctx(store, tmp_path)
    _retrain(ctx)
    _label(store, 2)
    config = load_config(env={"CONCNER_SERVICES__DATABASE_URL": store.url})
    monkeypatch.setattr(tasks, "config", lambda: config)
    with tasks.running_here(ctx):
        assert main(["retrain", "p", "--full"]) == 0  # immediate mode: the job runs here
        run = store.runs("p", kind="retrain")[0]
        assert run.status == "succeeded" and run.force_full and run.update_kind == "full"
        assert f"full retrain: run {run.id} queued" in capsys.readouterr().out
        _label(store, 1)
        assert main(["retrain", "p"]) == 0
        run = store.runs("p", kind="retrain")[0]
        assert (run.update_kind, run.n_new_labels) == ("incremental", 1), run.update_reason
        assert main(["retrain", "nope"]) == 2
        assert "nope" in capsys.readouterr().err


def test_runs_before_incremental_updates_lead_to_a_full_retrain(store, tmp_path, encoder):
    make_project(store, "p", encoder, n_source=12, n_dev=6, n_pool=10)
    ctx = _ctx(store, tmp_path)
    first = _retrain(ctx)
    with store.write() as s:  # as a run recorded before migration 0004 looks
        from concner.store.model_versions import Run

        s.get(Run, first).update_kind = None
        s.get(Run, first).trained_on = None
    _label(store, 2)
    run = store.get_run(_retrain(ctx))
    assert run.update_kind == "full" and "no record" in run.update_reason


def test_a_forced_full_retrain_stays_full_when_re_queued(store, tmp_path, encoder):
    make_project(store, "p", encoder, n_source=6, n_dev=4, n_pool=4)
    ctx = _ctx(store, tmp_path)
    ctx.shutdown.set()  # the worker stops as the run starts: it is re-queued
    forced, _ = store.request_run("p", full=True)
    assert execute_retrain(ctx, "p", forced) == "failed"
    follow = store.lock_state("p").queued_run_id
    assert follow != forced and store.get_run(follow).force_full
    assert store.request_run("p") == (follow, False)  # a new request joins the follow-up
    # a dead worker's forced retrain: the recovery run is full as well
    assert store.acquire_retrain(follow, "dead-worker")
    (recovered,) = store.recover_stale(0)
    assert store.get_run(recovered.queued_run_id).force_full


def test_an_update_keeps_the_stage1_teacher_of_the_model_it_updates(store, tmp_path, encoder):
    training = {**TINY_TRAINING, "loss": {**TINY_TRAINING["loss"], "kd": True},
                "training": {**TINY_TRAINING["training"], "kd_epochs": 1},
                "active": {"strategy": "teacher_student"}}
    make_project(store, "p", encoder, n_source=10, n_dev=4, n_pool=12, training=training)
    ctx = _ctx(store, tmp_path)
    _retrain(ctx)
    v1 = store.active_model_version("p")
    teacher = _weights(ctx.registry.load_teacher(v1))
    _label(store, 2)
    run = store.get_run(_retrain(ctx))
    assert run.update_kind == "incremental", run.update_reason
    v2 = store.active_model_version("p")
    assert v2.run_id == run.id
    kept = ctx.registry.load_teacher(v2)
    assert kept is not None and all(torch.equal(teacher[k], v) for k, v in _weights(kept).items())


def test_the_app_shows_the_kind_of_each_retrain():
    from types import SimpleNamespace

    from concner.ui.views import runs_frame, update_text

    def run(**kw):
        base = {"id": 1, "kind": "retrain", "status": "succeeded", "reason": "new_labels",
                "requested_at": None, "started_at": None, "finished_at": None,
                "progress": None, "label_counts": {}, "error": None, "update_kind": None,
                "update_reason": None, "force_full": False, "n_new_labels": None,
                "n_replay": None, "model_version_id": None}
        return SimpleNamespace(**{**base, **kw})

    inc = run(update_kind="incremental", n_new_labels=12, n_replay=200,
              update_reason="12 new <= 200")
    assert update_text(inc) == "incremental: 12 new + 200 replayed"
    assert update_text(run(update_kind="full")) == "full"
    assert update_text(run(status="queued", force_full=True)) == "full requested"
    assert update_text(run(kind="predict", update_kind="full")) == ""
    frame = runs_frame([inc, run(id=2, update_kind="full", update_reason="forced")])
    assert list(frame["update"]) == ["incremental: 12 new + 200 replayed", "full"]
    assert list(frame["why full or incremental"]) == ["12 new <= 200", "forced"]
