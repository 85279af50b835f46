"""The import and send buttons name the project they act on (Data, Review, Export; the
Review page's "Send N sentences of 'demo' to Argilla" is checked in test_app_model_pages),
and an import can be undone after the Data page showed what goes."""

from __future__ import annotations

import pytest
from appkit import app_env, no_exception, open_page

GOOD = b"John\tB-PER\nvisited\tO\nParis\tB-LOC\n\nGoogle\tB-ORG\nis\tO\nhere\tO\n"


@pytest.fixture
def store(monkeypatch, tmp_path):
    from concner.store import Store

    store = Store(app_env(monkeypatch, tmp_path))
    for name in ("demo", "other"):
        store.create_project(name, source_lang="en", target_langs=["sw"],
                             entity_types=["PER", "ORG", "LOC"], encoder="/nonexistent")
    return store


@pytest.mark.parametrize("project", ["demo", "other"])
def test_every_import_button_names_the_project(store, project):
    at = open_page("data", project=project)
    no_exception(at)
    labels = [b.label for b in at.button if b.label.startswith("Import")]
    assert labels  # the upload and the datasets forms of every tab
    assert all(label.endswith(f"into project '{project}'") for label in labels), labels
    assert f"Import files into project '{project}'" in labels
    assert f"Import dataset into project '{project}'" in labels


@pytest.mark.parametrize("project", ["demo", "other"])
def test_the_sync_and_push_buttons_name_the_project(store, project):
    review = open_page("review", project=project)
    no_exception(review)
    assert f"Sync with Argilla now (project '{project}')" in [b.label for b in review.button]
    export = open_page("export", project=project)
    no_exception(export)
    assert f"Push project '{project}' to the Hub" in [b.label for b in export.button]


def test_an_import_is_listed_and_deleted_only_after_the_confirmation(store):
    at = open_page("data", project="demo")
    at.tabs[0].file_uploader[0].set_value([("first-en.tsv", GOOD, "text/plain")])
    at.tabs[0].button[0].click()
    at.run()
    no_exception(at)
    (batch,) = store.import_batches("demo")
    assert batch.source_name == "first-en.tsv" and batch.n_sentences == 2
    assert "first-en.tsv" in at.dataframe[-1].value["file or dataset"].tolist()
    next(b for b in at.button if b.label == "Delete this import").click()
    at.run()
    no_exception(at)
    warning = " ".join(w.value for w in at.warning)
    assert "2 sentences (2 labelled)" in warning and "**demo**" in warning
    assert len(store.sentences("demo")) == 2  # shown, not yet deleted
    next(b for b in at.button
         if b.label == f"Yes, delete import {batch.id} from project 'demo'").click()
    at.run()
    no_exception(at)
    assert store.sentences("demo") == []
    assert any(f"Deleted import {batch.id}: 2 sentences" in s.value for s in at.success)
    assert not at.dataframe or "first-en.tsv" not in str(at.dataframe[-1].value)
