"""Deleting a project: every row it owns and its checkpoint folder go, another project is
untouched, a queued run blocks it; the Overview page's admin-gated, typed-name action."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from appkit import no_exception, open_page, trained_store, use_store
from storekit import make_sentences

from concner.config import load_config
from concner.errors import StoreConflict
from concner.jobs.registry import ModelRegistry
from concner.store import Store
from concner.store.model_versions import Base, Project


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A trained project "demo" (runs, metrics, model, predictions, links) and a second
    project "other" with data, labels, a run and sync state, in one store folder."""
    folder = tmp_path_factory.mktemp("built")
    store = trained_store(folder, targets=("de",))
    store.create_project("other", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    store.import_sentences("other", make_sentences("o", 5, "en", seed=4), role="source",
                           split="train")
    store.import_sentences("other", make_sentences("ot", 5, "de", seed=5, meta_fn=lambda i: {
        "source_id": f"o{i}"}), role="translation", split="train")
    run, _ = store.request_run("other")
    store.cancel_run(run)
    store.set_sync_state("other", "ds", status="ok")
    (folder / "models" / "other-2").mkdir(parents=True)
    store.close()
    return folder


@pytest.fixture
def folder(built, tmp_path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    return copy


def _rows(store: Store) -> dict[str, int]:
    """Rows per table (every table of the schema)."""
    with store.engine.connect() as c:
        return {t: c.execute(sa.select(sa.func.count()).select_from(Base.metadata.tables[t]))
                .scalar() for t in Base.metadata.tables}


def _rows_of(store: Store, project_id: int) -> dict[str, int]:
    """Rows that belong to the project, found through each table's project or sentence or
    run reference (independently of the deletion code)."""
    q = {
        "sentences": "SELECT count(*) FROM sentences WHERE project_id = :p",
        "import_batches": "SELECT count(*) FROM import_batches WHERE project_id = :p",
        "annotations": "SELECT count(*) FROM annotations a JOIN sentences s ON a.sentence_id "
                       "= s.id WHERE s.project_id = :p",
        "translation_links": "SELECT count(*) FROM translation_links WHERE project_id = :p",
        "runs": "SELECT count(*) FROM runs WHERE project_id = :p",
        "shards": "SELECT count(*) FROM shards x JOIN runs r ON x.run_id = r.id "
                  "WHERE r.project_id = :p",
        "shard_completions": "SELECT count(*) FROM shard_completions x JOIN runs r "
                             "ON x.run_id = r.id WHERE r.project_id = :p",
        "metrics": "SELECT count(*) FROM metrics m JOIN runs r ON m.run_id = r.id "
                   "WHERE r.project_id = :p",
        "model_versions": "SELECT count(*) FROM model_versions WHERE project_id = :p",
        "predictions": "SELECT count(*) FROM predictions p JOIN sentences s ON p.sentence_id "
                       "= s.id WHERE s.project_id = :p",
        "sync_state": "SELECT count(*) FROM sync_state WHERE project_id = :p",
        "retrain_locks": "SELECT count(*) FROM retrain_locks WHERE project_id = :p",
        "projects": "SELECT count(*) FROM projects WHERE id = :p",
    }
    with store.engine.connect() as c:
        return {k: c.execute(sa.text(v), {"p": project_id}).scalar() for k, v in q.items()}


def test_delete_project_removes_its_rows_and_checkpoints_only(folder):
    store = Store(f"sqlite:///{folder / 'store.db'}")
    registry = ModelRegistry(store, str(folder / "models"))
    demo = store.get_project("demo").id
    other = store.get_project("other").id
    owned = _rows_of(store, demo)
    assert all(owned[t] > 0 for t in ("sentences", "import_batches", "annotations", "translation_links", "runs",
                                      "metrics", "model_versions", "predictions", "shards",
                                      "shard_completions"))
    other_before = _rows_of(store, other)
    total_before = _rows(store)
    demo_dir = Path(registry.project_dir("demo"))
    assert demo_dir.is_dir()

    deleted = registry.delete_project("demo")

    assert {t: n for t, n in deleted.items() if t in owned} == owned
    assert deleted["checkpoint_folders"] == 1 and not demo_dir.exists()
    assert _rows_of(store, demo) == dict.fromkeys(owned, 0)
    assert _rows_of(store, other) == other_before
    after = _rows(store)
    assert all(after[t] == total_before[t] - owned.get(t, 0) for t in after)
    assert (folder / "models" / "other-2").is_dir()
    assert [p.name for p in store.list_projects()] == ["other"]
    store.close()


def test_delete_is_refused_while_a_run_is_queued(folder):
    store = Store(f"sqlite:///{folder / 'store.db'}")
    run, _ = store.request_run("demo", kind="predict")
    before = _rows(store)
    with pytest.raises(StoreConflict, match=f"runs \\({run}\\)"):
        ModelRegistry(store, str(folder / "models")).delete_project("demo")
    assert _rows(store) == before
    store.cancel_run(run)
    ModelRegistry(store, str(folder / "models")).delete_project("demo")
    with store.read() as s:
        assert s.scalar(sa.select(Project.id).where(Project.name == "demo")) is None
    store.close()


def test_overview_delete_needs_admin_and_the_typed_name(folder, monkeypatch):
    use_store(monkeypatch, folder)
    monkeypatch.setenv("CONCNER_ADMIN_PASSWORD", "s3cret-pw")
    store = Store(f"sqlite:///{folder / 'store.db'}")
    demo_dir = Path(ModelRegistry.from_config(store, load_config(env={
        "CONCNER_SERVICES__CHECKPOINTS": str(folder / "models")})).project_dir("demo"))
    at = open_page(project="demo")
    no_exception(at)
    assert not [b for b in at.button if b.key == "delete-project"]  # not without a login
    login = next(t for t in at.text_input if t.label == "Admin password")
    login.input("s3cret-pw")
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    no_exception(at)
    button = at.button(key="delete-project")
    assert button.disabled
    at.text_input(key="delete-confirm").input("dem")
    at.run()
    assert at.button(key="delete-project").disabled  # a wrong name cannot be confirmed
    assert "demo" in [p.name for p in store.list_projects()]
    at.text_input(key="delete-confirm").input("demo")
    at.run()
    assert not at.button(key="delete-project").disabled
    at.button(key="delete-project").click()
    at.run()
    no_exception(at)
    assert [p.name for p in store.list_projects()] == ["other"]
    assert not demo_dir.exists()
    assert any("Project 'demo' deleted" in s.value for s in at.success)
    store.close()
