"""Evaluating any model version on the current dev sets (the ``evaluate`` job, one run
for every version, ``concner project evaluate``), and every stored version getting F1
when a dev set arrives or changes (concner/jobs/dev_refresh.py via the worker's tick)."""

from __future__ import annotations

import pytest
import torch
from storekit import TINY_TRAINING, env_store, make_sentences

from concner.cli import main
from concner.config import load_config
from concner.jobs import queue as tasks
from concner.jobs.context import JobContext
from concner.jobs.dev_refresh import REASON, stale_versions
from concner.jobs.evaluate import execute_evaluate
from concner.jobs.registry import ModelRegistry
from concner.jobs.retrain import execute_retrain
from concner.ui.evaluations import CURRENT, NEVER, OLDER, scores_frame, version_scores

torch.set_num_threads(1)


@pytest.fixture()
def store(tmp_path, monkeypatch):
    st = env_store(tmp_path, monkeypatch)
    yield st
    st.close()


@pytest.fixture()
def enqueued(monkeypatch):
    """What the code under test puts on the queue (nothing runs)."""
    calls = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: calls.append((task.name, *args)))
    return calls


@pytest.fixture()
def ctx(store, tmp_path):
    return JobContext(store, ModelRegistry(store, str(tmp_path / "models"), keep_versions=5),
                      load_config(env={}), "test")


def two_versions_without_dev(store, ctx, encoder):
    """Project ``p`` (en -> de) with source labels and pool but no dev set, and two model
    versions trained on it (never evaluated: there was nothing to evaluate on)."""
    store.create_project("p", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder=encoder,
                         training_config=TINY_TRAINING)
    store.import_sentences("p", make_sentences("src", 16, "en", seed=1), role="source",
                           split="train")
    store.import_sentences("p", make_sentences("pool-", 6, "de", seed=3, labelled=False),
                           role="target", split="pool")
    for _ in range(2):
        run_id, _ = store.request_run("p", full=True)
        assert execute_retrain(ctx, "p", run_id) == "succeeded", store.get_run(run_id).error
    versions = store.model_versions("p")
    assert len(versions) == 2 and not store.metrics("p")
    return versions


def import_dev(store, n=8, prefix="dev-"):
    """Import ``n`` gold de dev sentences; returns the import batch id."""
    return store.import_sentences("p", make_sentences(prefix, n, "de", seed=10),
                                  role="target", split="dev").batch_id


def test_a_dev_set_arriving_queues_one_evaluation_of_every_version(store, ctx, encoder,
                                                                   enqueued):
    versions = two_versions_without_dev(store, ctx, encoder)
    assert tasks.tick(ctx)["enqueued"] == 0  # no dev set: nothing to evaluate on
    assert [s.dev_state for s in version_scores(store, "p")] == [NEVER, NEVER]

    import_dev(store)
    assert tasks.tick(ctx)["enqueued"] == 1
    (run,) = store.runs("p", kind="evaluate")
    assert run.model_version_id is None and run.reason == REASON
    assert enqueued == [("evaluate", "p", run.id, None)]
    assert tasks.tick(ctx)["enqueued"] == 0  # deduplicated: one queued run covers them all
    assert tasks.request_evaluate(store, "p", None) == run.id  # the button joins it too
    assert len(store.runs("p", kind="evaluate")) == 1

    assert execute_evaluate(ctx, "p", run.id, None) == "succeeded", store.get_run(run.id).error
    parts = [r for r in store.runs("p", kind="evaluate") if r.id != run.id]
    assert sorted(r.model_version_id for r in parts) == sorted(v.id for v in versions)
    assert all(r.status == "succeeded" and r.config == {"part_of": run.id} for r in parts)
    for mv in versions:
        (metric,) = [m for m in store.metrics("p") if m.model_version_id == mv.id]
        assert metric.language == "de" and metric.support > 0
        assert store.get_model_version(mv.id).mean_f1 == pytest.approx(metric.f1)
    dev = store.dev_set("p")
    assert stale_versions(store, "p", dev.fingerprint) == []
    scores = version_scores(store, "p")
    assert [s.dev_state for s in scores] == [CURRENT, CURRENT]
    assert scores[0].evaluated_on == {"de": 8}
    assert tasks.tick(ctx)["enqueued"] == 0  # every version is scored on this dev set


def test_changed_or_deleted_dev_sentences_mark_the_old_scores_and_queue_again(
        store, ctx, encoder, enqueued):
    two_versions_without_dev(store, ctx, encoder)
    import_dev(store)
    run_id = tasks.request_evaluate(store, "p", None)
    assert execute_evaluate(ctx, "p", run_id, None) == "succeeded"
    before = store.dev_set("p")

    batch = import_dev(store, 4, prefix="more-dev-")  # the dev set grows
    grown = store.dev_set("p")
    assert grown.fingerprint != before.fingerprint and grown.counts == {"de": 12}
    assert [s.dev_state for s in version_scores(store, "p")] == [OLDER, OLDER]
    frame = scores_frame(version_scores(store, "p"), grown.counts)
    assert list(frame["scored on"]) == ["older dev set (8 de; now 12 de)"] * 2
    assert tasks.tick(ctx)["enqueued"] == 1
    again = store.runs("p", kind="evaluate")[0]
    assert again.id != run_id and again.config["dev_fingerprint"] == grown.fingerprint
    assert execute_evaluate(ctx, "p", again.id, None) == "succeeded"
    assert [s.dev_state for s in version_scores(store, "p")] == [CURRENT, CURRENT]

    assert store.delete_import("p", batch).sentences == 4  # that import undone
    assert store.dev_set("p").fingerprint != grown.fingerprint
    assert store.dev_set("p").fingerprint == before.fingerprint  # the same sentences as then
    assert [s.dev_state for s in version_scores(store, "p")] == [OLDER, OLDER]
    assert tasks.tick(ctx)["enqueued"] == 1


def test_a_failed_evaluation_is_not_retried_by_every_tick(store, ctx, encoder, enqueued,
                                                          monkeypatch):
    two_versions_without_dev(store, ctx, encoder)
    import_dev(store)
    assert tasks.tick(ctx)["enqueued"] == 1
    run = store.runs("p", kind="evaluate")[0]

    def broken(mv, device="cpu"):
        raise OSError("checkpoint unreadable")

    monkeypatch.setattr(ctx.registry, "load", broken)
    assert execute_evaluate(ctx, "p", run.id, None) == "failed"
    assert "could be evaluated" in store.get_run(run.id).error
    assert tasks.tick(ctx)["enqueued"] == 0  # tried on this dev set: the button retries
    assert tasks.request_evaluate(store, "p", None) != run.id


def test_evaluate_one_version_from_the_cli(store, ctx, encoder, enqueued, capsys):
    versions = two_versions_without_dev(store, ctx, encoder)
    assert main(["project", "evaluate", "p", "--version", "1"]) == 2
    assert "no gold dev sentences" in capsys.readouterr().err
    import_dev(store)
    assert main(["project", "evaluate", "p", "--version", "9"]) == 2
    assert "has no model v9" in capsys.readouterr().err
    assert main(["project", "evaluate", "p", "--version", "1"]) == 0
    out = capsys.readouterr().out
    (run,) = store.runs("p", kind="evaluate")
    assert f"evaluation of v1 on the current dev sets (8 de): run {run.id} queued" in out
    assert run.model_version_id == versions[0].id
    assert enqueued == [("evaluate", "p", run.id, versions[0].id)]
    assert execute_evaluate(ctx, "p", run.id, versions[0].id) == "succeeded"
    states = {s.version: s.dev_state for s in version_scores(store, "p")}
    assert states == {1: CURRENT, 2: NEVER}
    assert main(["project", "evaluate", "p"]) == 0  # every version
    assert "evaluation of every stored version" in capsys.readouterr().out
