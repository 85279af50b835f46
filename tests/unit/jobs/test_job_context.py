"""What every job shares (concner/jobs/context.py): the configuration a project's jobs run
with (defaults < TOML < the project's saved settings < the environment, the project's
languages, labels and encoder above all), and the job chain (concner/jobs/chain.py)."""

from __future__ import annotations

from pathlib import Path

from storekit import TINY_TRAINING

from concner.config import load_config
from concner.jobs.chain import WorkerChain
from concner.jobs.context import project_config
from concner.store import Store
from concner.store.snapshot import take_snapshot


def _snapshot(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    training = {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": 2}}
    store.create_project("p", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG"], encoder="enc", training_config=training)
    snap = take_snapshot(store, "p")
    store.close()
    return snap


def test_the_environment_beats_the_projects_saved_training_settings(tmp_path, monkeypatch):
    """The README: ``CONCNER_<SECTION>__<FIELD>`` overrides the config file, and so it
    overrides a project's saved training settings (the worker's base config already has
    the environment in it; the project's settings must not undo it)."""
    snap = _snapshot(tmp_path)
    monkeypatch.setenv("CONCNER_TRAINING__EPOCHS", "5")
    base = load_config()
    assert base.training.epochs == 5
    assert project_config(base, snap).training.epochs == 5
    # without the variable the project's setting beats the base config's
    assert project_config(base, snap, env={}).training.epochs == 2
    monkeypatch.delenv("CONCNER_TRAINING__EPOCHS")
    assert project_config(load_config(), snap).training.epochs == 2


def test_no_setting_overrides_the_projects_languages_labels_and_encoder(tmp_path,
                                                                          monkeypatch):
    snap = _snapshot(tmp_path)
    monkeypatch.setenv("CONCNER_DATA__SOURCE_LANG", "fr")
    monkeypatch.setenv("CONCNER_MODEL__ENCODER", "other")
    config = project_config(load_config(), snap)
    assert (config.data.source_lang, list(config.data.target_langs)) == ("en", ["de"])
    assert list(config.data.entity_types) == ["PER", "ORG"] and config.model.encoder == "enc"


def test_the_chain_queues_a_prediction_on_promotion_and_a_sync_after_it():
    queued: list[tuple] = []
    hooks: list[str] = []
    chain = WorkerChain(queue_retrain=lambda project, run_id: queued.append(("retrain", run_id)),
                        queue_predict=lambda project: queued.append(("predict", project)),
                        queue_sync=lambda project: queued.append(("sync", project)),
                        can_sync=lambda: bool(hooks))
    callbacks = chain.callbacks()
    callbacks["after_promotion"]("p")
    callbacks["after_predict"]("p")  # no sync hook registered: nothing to sync
    hooks.append("argilla")
    callbacks["after_predict"]("p")
    callbacks["enqueue_retrain"]("p", 7)
    assert queued == [("predict", "p"), ("sync", "p"), ("retrain", 7)]
