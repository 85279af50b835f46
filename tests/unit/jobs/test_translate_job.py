"""The queued ``translate`` job: a hand-built FreeDict dictionary (and a user's file with
missing translations) through ``tasks.request_translate`` in Huey immediate mode; links
carry the projection status, failed pairs keep no sentence, a re-run adds nothing, cancel
imports nothing, and the next retrain snapshot counts the translations."""

from __future__ import annotations

import json

import pytest
import torch
from storekit import BACKENDS, TINY_TRAINING, make_sentences, open_store, tiny_encoder
from translation_support import write_freedict

from concner.config import load_config
from concner.errors import ConfigError
from concner.jobs import queue as tasks
from concner.jobs.context import JobContext
from concner.jobs.registry import ModelRegistry
from concner.jobs.retrain import execute_retrain
from concner.jobs.translate import run_translate
from concner.store.snapshot import take_snapshot

torch.set_num_threads(1)
#: (headword, dictd body); the first sense line is the translation
ENTRIES = [("visited", "visited\nbesuchte\n"), ("works", "works\narbeitet\n"),
           ("lives", "lives\nwohnt\n"), ("company", "company\nFirma\n"),
           ("city", "city\nStadt\n")]
N_SOURCE = 12


@pytest.fixture()
def dict_dir(tmp_path):
    return write_freedict(tmp_path / "dictd", "eng-deu", sorted(ENTRIES))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with open_store(request.param, tmp_path) as st:
        st.create_project("p", source_lang="en", target_langs=["de", "nl"],
                          entity_types=["PER", "ORG", "LOC"], encoder=tiny_encoder(tmp_path),
                          training_config=TINY_TRAINING)
        st.import_sentences("p", make_sentences("src", N_SOURCE, "en", seed=1), role="source",
                            split="train")
        # unlabelled and dev source sentences are not translated
        st.import_sentences("p", make_sentences("raw", 3, "en", seed=2, labelled=False),
                            role="source", split="pool")
        st.import_sentences("p", make_sentences("dev-en", 2, "en", seed=3), role="source",
                            split="dev")
        yield st


@pytest.fixture()
def ctx(store, tmp_path):
    config = load_config(env={})
    context = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), config, "t")
    with tasks.running_here(context):
        yield context


def _entities(sent) -> list[tuple[str, str]]:
    """(label, words) of each entity, read from IOB2 tags independently of the code."""
    out: list[list] = []
    for tok, tag in zip(sent.tokens, sent.tags):
        if tag.startswith("B-"):
            out.append([tag[2:], tok])
        elif tag.startswith("I-"):
            out[-1][1] += " " + tok
    return [tuple(e) for e in out]


def test_dictionary_run_imports_links_and_a_rerun_adds_nothing(store, ctx, dict_dir):
    run = tasks.request_translate(store, "p", backend="dictionary", target_lang="de",
                                  directory=str(dict_dir))
    row = store.get_run(run)
    assert row.kind == "translate" and row.status == "succeeded", row.error
    assert row.progress["step"] == row.progress["total"] == N_SOURCE
    assert store.counts("p")["translation_links"] == {"ok": N_SOURCE}
    sources = {s.id: s for s in store.sentences("p", role="source", split="train")}
    translations = store.sentences("p", role="translation", lang="de")
    assert len(translations) == N_SOURCE
    assert {t.meta["source_id"] for t in translations} == set(sources)
    for tr in translations:  # entities are carried over; known words are translated
        src = sources[tr.meta["source_id"]]
        assert _entities(tr) == _entities(src)
        known = {head for head, _ in ENTRIES} & set(src.tokens)
        assert not known & set(tr.tokens)
    before = store.annotation_count("p")
    again = tasks.request_translate(store, "p", backend="dictionary", target_lang="de",
                                    directory=str(dict_dir))
    assert store.get_run(again).status == "succeeded"
    assert store.get_run(again).progress["total"] == 0
    assert store.annotation_count("p") == before
    assert len(store.sentences("p", role="translation")) == N_SOURCE


def test_failed_pairs_are_links_without_sentences_and_never_train(store, ctx, dict_dir,
                                                                   tmp_path):
    sources = store.sentences("p", role="source", split="train")
    half = sources[: N_SOURCE // 2]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"source_id": s.id, "tokens": s.tokens,
                                        "ner_tags": s.tags}) + "\n" for s in half))
    run = tasks.request_translate(store, "p", backend="file", target_lang="nl",
                                  translations=str(path))
    assert store.get_run(run).status == "succeeded", store.get_run(run).error
    assert store.counts("p")["translation_links"] == {"ok": len(half),
                                                      "failed": N_SOURCE - len(half)}
    assert len(store.sentences("p", role="translation", lang="nl")) == len(half)
    snap = take_snapshot(store, "p")
    assert snap.label_counts["translated"] == len(half)
    assert {snap.source[i].id for i, _ in snap.pairs} == {s.id for s in half}
    # the same file again adds nothing; the failed sources are left to another backend
    tasks.request_translate(store, "p", backend="file", target_lang="nl",
                            translations=str(path))
    assert store.counts("p")["translation_links"] == {"ok": len(half),
                                                      "failed": N_SOURCE - len(half)}
    assert store.sentences("p", role="translation", lang="nl") and \
        len(store.sentences("p", role="translation", lang="nl")) == len(half)


def test_cancel_while_running_imports_nothing(store, ctx, dict_dir):
    run, _ = store.request_run("p", kind="translate", config={
        "backend": "dictionary", "target_lang": "de", "options": {"directory": str(dict_dir)}})

    class CancelOnStart(set):
        """The user presses Cancel as soon as the worker has started the run."""

        def add(self, run_id):
            super().add(run_id)
            store.cancel_run(run_id)

    ctx.current_runs = CancelOnStart()
    assert run_translate(ctx, "p", run) == "cancelled"
    assert store.get_run(run).status == "cancelled"
    assert store.counts("p")["translation_links"] == {}
    assert store.sentences("p", role="translation") == []


def test_request_checks_backend_options_and_language(store, ctx, dict_dir):
    with pytest.raises(ConfigError, match="does not take"):
        tasks.request_translate(store, "p", backend="dictionary", target_lang="de", model="x")
    with pytest.raises(ConfigError, match="translates into"):
        tasks.request_translate(store, "p", backend="dictionary", target_lang="fr")
    with pytest.raises(ConfigError, match="needs translations"):
        tasks.request_translate(store, "p", backend="file", target_lang="de")
    assert store.runs("p", kind="translate") == []


def test_next_retrain_snapshot_counts_the_translations(store, ctx, dict_dir):
    tasks.request_translate(store, "p", backend="dictionary", target_lang="de",
                            directory=str(dict_dir))
    run, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", run) == "succeeded", store.get_run(run).error
    counts = store.get_run(run).label_counts
    assert counts["translated"] == N_SOURCE and counts["source"] == N_SOURCE


def test_worker_shutdown_requeues_and_the_next_start_runs_it(store, ctx, dict_dir):
    run, _ = store.request_run("p", kind="translate", config={
        "backend": "dictionary", "target_lang": "de", "options": {"directory": str(dict_dir)}})
    ctx.shutdown.set()  # SIGTERM arrived: the run stops at its first progress write
    assert run_translate(ctx, "p", run) == "failed"
    lost = store.get_run(run)
    (follow,) = [r for r in store.runs("p", kind="translate") if r.id != run]
    assert f"re-queued as run {follow.id}" in lost.error
    assert follow.status == "queued" and follow.config == lost.config
    assert store.sentences("p", role="translation") == []
    ctx.shutdown.clear()  # the next worker starts: its first tick enqueues the queued run
    assert tasks.tick(ctx, startup=True) == {"recovered": 0, "enqueued": 1}
    assert store.get_run(follow.id).status == "succeeded", store.get_run(follow.id).error
    assert len(store.sentences("p", role="translation", lang="de")) == N_SOURCE
    assert tasks.tick(ctx, startup=True) == {"recovered": 0, "enqueued": 0}


def test_imported_translations_count_as_done_for_their_language_only(store, ctx, dict_dir):
    """A user's imported translation (import_sentences) of src0 into de is a usable link
    in de: a de run skips that source, while nl still needs every source."""
    src0 = store.sentences("p", role="source", split="train")[0]
    store.import_sentences("p", [src0.__class__.from_tokens(
        "mine-0", "de", list(src0.tokens), list(src0.tags), meta={"source_id": src0.id})],
        role="translation", split="train")
    assert len(store.untranslated_sources("p", "de", "dictionary")) == N_SOURCE - 1
    assert len(store.untranslated_sources("p", "nl", "dictionary")) == N_SOURCE
    with store.engine.connect() as c:
        langs = c.exec_driver_sql("SELECT lang FROM translation_links").scalars().all()
    assert langs == ["de"]
    run = tasks.request_translate(store, "p", backend="dictionary", target_lang="de",
                                  directory=str(dict_dir))
    assert store.get_run(run).progress["total"] == N_SOURCE - 1
    assert len(store.sentences("p", role="translation", lang="de")) == N_SOURCE
