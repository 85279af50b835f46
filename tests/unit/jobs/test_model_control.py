"""Pin, roll back and unpin: a pinned version stays active while better versions are
stored and evaluated ("not promoted: v1 is pinned"); a rollback pins an older version;
unpin returns to the rule; a change of the active version queues a pool prediction made
with it; the CLI does the same."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from storekit import make_project, publish_evaluated

from concner.errors import ModelVersionError
from concner.jobs.model_control import pin, roll_back, unpin
from concner.jobs.registry import ModelRegistry

torch.set_num_threads(1)


@pytest.fixture
def setup(tmp_path):
    from tiny import make_tiny_bundle

    from concner.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    make_project(store, "p", "enc", n_source=4, n_dev=2, n_pool=6, targets=("de",))
    registry = ModelRegistry(store, str(tmp_path / "models"), keep_versions=3)
    bundle = make_tiny_bundle(tmp_path)
    for f1 in (0.60, 0.70):  # v1, then the better v2 is promoted
        publish_evaluated(store, registry, "p", bundle, {"de": f1})
    assert store.active_model_version("p").version == 2
    return store, registry, bundle


def test_a_pinned_version_stays_active_and_new_versions_say_why_not(setup):
    store, registry, bundle = setup
    queued = []
    done = pin(store, registry, "p", 1, queue_prediction=lambda s, p: queued.append(p) or 41)
    assert done.changed and done.predict_run_id == 41 and queued == ["p"]
    assert "v1 is active instead of v2 and pinned" in done.message
    assert store.active_model_version("p").version == 1
    assert registry.pinned("p").version == 1
    better = publish_evaluated(store, registry, "p", bundle, {"de": 0.95})
    assert not better.promoted and better.reason.startswith("v1 is pinned")
    assert store.active_model_version("p").version == 1
    # pinning the active version again queues nothing (the suggestions are already its own)
    again = pin(store, registry, "p", 1, queue_prediction=lambda s, p: pytest.fail("queued"))
    assert not again.changed and again.predict_run_id is None
    # unpinned, the rule decides again: the next better version is promoted
    assert "v1 is no longer pinned" in unpin(registry, "p")
    assert registry.pinned("p") is None
    assert publish_evaluated(store, registry, "p", bundle, {"de": 0.96}).promoted
    assert "no version of p was pinned" in unpin(registry, "p").lower()


def test_rollback_pins_the_previous_kept_version_and_refuses_newer_or_pruned(setup):
    store, registry, bundle = setup
    done = roll_back(store, registry, "p", queue_prediction=lambda s, p: 7)
    assert done.version.version == 1 and registry.pinned("p").version == 1
    with pytest.raises(ModelVersionError, match="v2 is not older than the active v1; to "
                                                "make it active, pin it"):
        roll_back(store, registry, "p", 2, queue_prediction=lambda s, p: 7)
    with pytest.raises(ModelVersionError, match="no model v9; its versions with files: v1, v2"):
        pin(store, registry, "p", 9, queue_prediction=lambda s, p: 7)
    unpin(registry, "p")
    for f1 in (0.8, 0.9, 0.95):  # v3..v5 are promoted; keep_versions = 3 prunes v1 and v2
        publish_evaluated(store, registry, "p", bundle, {"de": f1})
    with pytest.raises(ModelVersionError, match="v2 of 'p' was pruned.*pick one of v3, v4, "
                                                "v5"):
        pin(store, registry, "p", 2, queue_prediction=lambda s, p: 7)


def test_the_pool_prediction_queued_by_a_rollback_uses_the_rolled_back_version(setup):
    from concner.config import load_config
    from concner.jobs.context import JobContext
    from concner.jobs.predict import execute_predict

    store, registry, _ = setup
    ctx = JobContext(store, registry, load_config(env={}), "test-worker")
    requested = []

    def queue(store_, project):
        run_id, _ = store_.request_run(project, kind="predict")
        requested.append(run_id)
        return run_id

    done = roll_back(store, registry, "p", queue_prediction=queue)
    assert execute_predict(ctx, "p", requested[0]) == "succeeded"
    run = store.get_run(requested[0])
    assert run.model_version_id == done.version.id
    assert store.predictions(done.version.id)


def test_the_command_line_pins_rolls_back_and_unpins(setup, tmp_path):
    store, _, _ = setup
    env = {**os.environ, "PYTHONPATH": os.getcwd(),
           "CONCNER_SERVICES__DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
           "CONCNER_SERVICES__CHECKPOINTS": str(tmp_path / "models"),
           "CONCNER_SERVICES__QUEUE_PATH": str(tmp_path / "queue.db")}
    env.pop("CONCNER_CONFIG", None)

    def cli(*args, group="model"):
        return subprocess.run([sys.executable, "-m", "concner.cli", group, *args],
                              check=False, capture_output=True, text=True, env=env,
                              timeout=120)

    pinned = cli("rollback", "p")
    assert pinned.returncode == 0, pinned.stderr
    assert "v1 is active instead of v2 and pinned" in pinned.stdout
    predict = store.runs("p", kind="predict")
    assert len(predict) == 1 and predict[0].status == "queued"  # the worker picks it up
    listed = cli("versions", "p")
    assert "v1\tactive, pinned" in listed.stdout and "Promote when the mean target dev F1" \
        in listed.stdout
    status = cli("status", "p", group="project")
    assert "active model: v1 (mean dev F1 60.00, pinned: concner model unpin" in status.stdout
    wrong = cli("pin", "p", "v7")
    assert wrong.returncode == 2 and "no model v7; its versions with files: v1, v2" in \
        wrong.stderr + wrong.stdout
    assert "no longer pinned" in cli("unpin", "p").stdout
    assert store.get_project("p").pinned_version_id is None
