"""Import batches on SQLite and PostgreSQL (CONCNER_TEST_POSTGRES_URL): every import is
recorded, one import can be previewed and undone (its sentences, their labels,
translations and predictions go; nothing else does), and the CLI does the same."""

from __future__ import annotations

import pytest
from storekit import database_url, make_sentences

from concner.errors import ImportBatchNotFound, StoreConflict
from concner.store import Store

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    url, cleanup = database_url(request.param, tmp_path)
    st = Store(url)
    st.create_project("demo", source_lang="en", target_langs=["de"],
                      entity_types=["PER", "ORG", "LOC"], encoder="enc")
    yield st
    st.close()
    cleanup()


def _import(store, prefix, n, lang, role, split, *, labelled=True, meta_fn=None, seed=1):
    return store.import_sentences("demo", make_sentences(prefix, n, lang, seed=seed,
                                                         labelled=labelled, meta_fn=meta_fn),
                                  role=role, split=split, source_name=f"{prefix}.tsv")


def _two_sources_and_a_translation(store):
    """Import 1: 6 source sentences; import 2: 4 more; import 3: translations of the first
    3 sentences of import 1 and of 1 sentence of import 2."""
    first = _import(store, "a", 6, "en", "source", "train")
    second = _import(store, "b", 4, "en", "source", "train", seed=2)
    source_of = {0: "a0", 1: "a1", 2: "a2", 3: "b0"}
    tr = _import(store, "tr", 4, "de", "translation", "train", seed=3,
                 meta_fn=lambda i: {"source_id": source_of[i]})
    return first.batch_id, second.batch_id, tr.batch_id


def test_every_import_is_a_batch_with_its_name_role_split_and_count(store):
    ids = _two_sources_and_a_translation(store)
    batches = store.import_batches("demo")
    assert [b.id for b in batches] == sorted(ids, reverse=True)  # newest first
    tr, _second, first = batches
    assert (first.source_name, first.role, first.split, first.lang, first.n_sentences,
            first.n_left) == ("a.tsv", "source", "train", "en", 6, 6)
    assert (tr.role, tr.lang, tr.n_sentences) == ("translation", "de", 4)
    assert "a.tsv" in first.describe() and "6 sentences" in first.describe()
    empty = store.import_sentences("demo", [], role="source", split="train")
    assert empty.batch_id is None and len(store.import_batches("demo")) == 3


def test_preview_counts_what_would_go_and_deletes_nothing(store):
    first, _second, _tr = _two_sources_and_a_translation(store)
    store.add_annotation("demo", "a0", ["O"] * len(store.sentences("demo", role="source")[0]
                                                   .tokens), author="ann")
    before = store.counts("demo")
    preview = store.preview_import_deletion("demo", first)
    assert (preview.sentences, preview.labelled) == (6, 6)
    assert preview.annotations == 6 + 1 + 3  # imported tags, a correction, 3 translations' tags
    assert (preview.translations, preview.translation_links) == (3, 3)
    assert preview.dev_langs == []
    assert "6 sentences (6 labelled)" in preview.summary()
    assert store.counts("demo") == before


def test_undoing_one_import_removes_its_sentences_and_what_hangs_off_them_only(store):
    first, second, tr = _two_sources_and_a_translation(store)
    deleted = store.delete_import("demo", first)
    assert (deleted.sentences, deleted.translations) == (6, 3)
    left = {s.id for s in store.sentences("demo")}
    assert left == {"b0", "b1", "b2", "b3", "tr3"}  # b0's translation stays with b0
    counts = store.counts("demo")
    assert counts["annotations"] == 5
    assert sum(counts["translation_links"].values()) == 1
    batches = {b.id: b for b in store.import_batches("demo")}
    assert set(batches) == {second, tr}  # the undone import is gone from the list
    assert batches[tr].n_left == 1  # the translation import lost 3 of its 4
    with pytest.raises(ImportBatchNotFound, match=f"no import {first}"):
        store.delete_import("demo", first)


def test_undoing_a_dev_import_says_which_dev_set_changes(store):
    dev = _import(store, "dev", 5, "de", "target", "dev").batch_id
    pool = _import(store, "pool", 5, "de", "target", "pool", labelled=False).batch_id
    assert store.preview_import_deletion("demo", pool).dev_langs == []
    assert store.preview_import_deletion("demo", dev).dev_langs == ["de"]
    store.delete_import("demo", dev)
    assert store.sentences("demo", split="dev") == []
    assert len(store.sentences("demo", split="pool")) == 5


def test_predictions_of_the_sentences_go_too(store):
    _import(store, "keep", 2, "de", "target", "pool", labelled=False)
    pool = _import(store, "pool", 3, "de", "target", "pool", labelled=False, seed=4).batch_id
    run_id, _ = store.request_run("demo")
    version = store.add_model_version("demo", run_id=run_id, path="/m", mean_f1=0.5, version=1)
    rows = [(s.meta["db_id"], ["O"] * len(s.tokens), [], 0.1)
            for s in store.sentences("demo", split="pool")]
    store.save_predictions(version.id, rows)
    assert store.preview_import_deletion("demo", pool).predictions == 3
    store.delete_import("demo", pool)
    assert len(store.predictions(version.id)) == 2


def test_an_import_cannot_be_undone_while_a_run_is_running(store):
    batch = _import(store, "a", 3, "en", "source", "train").batch_id
    run_id, _ = store.request_run("demo")
    assert store.start_run(run_id, "test-worker")
    with pytest.raises(StoreConflict, match="cancel it"):
        store.delete_import("demo", batch)
    assert len(store.sentences("demo")) == 3


def test_an_unknown_import_id_names_the_known_ones(store):
    batch = _import(store, "a", 2, "en", "source", "train").batch_id
    with pytest.raises(ImportBatchNotFound, match=f"its imports: {batch}.*concner project "
                                                  "imports demo"):
        store.preview_import_deletion("demo", batch + 40)


def test_cli_lists_imports_and_unimports_one_after_the_confirmation(tmp_path, monkeypatch,
                                                                      capsys):
    from concner.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    store = Store(url)
    store.create_project("p", source_lang="en", target_langs=["de"], entity_types=["PER"],
                         encoder="enc")
    data = tmp_path / "people-en.tsv"
    data.write_text("John\tB-PER\nwalks\tO\n\nMary\tB-PER\nsits\tO\n", encoding="utf-8")
    assert main(["project", "import", "p", str(data), "--role", "source", "--split",
                 "train", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    (batch,) = store.import_batches("p")
    assert f"as import {batch.id} (undo: concner project unimport p {batch.id})" in out
    assert main(["project", "imports", "p"]) == 0
    assert "people-en.tsv (source/train, en, 2 sentences" in capsys.readouterr().out
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert main(["project", "unimport", "p", str(batch.id)]) == 1
    out = capsys.readouterr().out
    assert "deletes for good: 2 sentences (2 labelled)" in out
    assert len(store.sentences("p")) == 2  # not confirmed: nothing went
    monkeypatch.setattr("builtins.input", lambda prompt: str(batch.id))
    assert main(["project", "unimport", "p", str(batch.id)]) == 0
    assert f"deleted import {batch.id} of 'p': 2 sentences" in capsys.readouterr().out
    assert store.sentences("p") == [] and store.import_batches("p") == []
    assert main(["project", "unimport", "p", str(batch.id), "--yes"]) == 2  # gone: exit 2
    assert f"no import {batch.id}" in capsys.readouterr().err
    store.close()


def test_undoing_a_dev_import_queues_the_evaluation_of_every_version(tmp_path, monkeypatch):
    from concner.jobs.unimport import undo_import

    monkeypatch.setenv("CONCNER_SERVICES__QUEUE_PATH", str(tmp_path / "queue.db"))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create_project("demo", source_lang="en", target_langs=["de", "ar"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    pool = _import(store, "pool", 3, "de", "target", "pool", labelled=False).batch_id
    dev_de = _import(store, "dev-de", 4, "de", "target", "dev").batch_id
    _import(store, "dev-ar", 4, "ar", "target", "dev", seed=2)
    assert undo_import(store, "demo", pool)[1] == ""  # no dev set changed: nothing to say
    run_id, _ = store.request_run("demo")
    store.add_model_version("demo", run_id=run_id, path="/m", mean_f1=0.5, version=1)
    deleted, note = undo_import(store, "demo", dev_de)
    assert deleted.dev_langs == ["de"]
    (evaluation,) = store.runs("demo", kind="evaluate")
    assert evaluation.status == "queued" and evaluation.model_version_id is None  # every one
    assert note == (f"The de dev set changed: every model version is evaluated on it again "
                    f"(run {evaluation.id}).")
    store.close()
