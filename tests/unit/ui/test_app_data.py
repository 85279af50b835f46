"""Data page: uploads import in one transaction, every error names file and line, size is
bounded, unlabelled target text and gold dev data land in the right role and split."""

from __future__ import annotations

import shutil

import pytest
from appkit import app_env, no_exception, open_page

from concner.ui.uploads import REPAIR_LABEL

GOOD = b"John\tB-PER\nvisited\tO\nParis\tB-LOC\n\nGoogle\tB-ORG\nis\tO\nhere\tO\n"
BAD = b"Mary\tB-PER\nlives\tO\n\nin\tO\nLondon\tI-LOC\n"  # stray I- on line 5


@pytest.fixture
def store(monkeypatch, tmp_path):
    from concner.store import Store

    url = app_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CONCNER_DATA__MAX_UPLOAD_MB", "1")
    store = Store(url)
    store.create_project("demo", source_lang="en", target_langs=["sw", "ar"],
                         entity_types=["PER", "ORG", "LOC"], encoder="/nonexistent")
    return store


def _form_button(at, label: str):
    return next(b for b in at.button if b.label == label)


def _tab(at, kind_index: int):
    return at.tabs[kind_index]


def _import_dataset(folder):
    """The Data page after importing the datasets folder as source data."""
    at = open_page("data", project="demo")
    tab = _tab(at, 0)
    tab.text_input[0].input(str(folder))
    next(b for b in tab.button if b.label == "Import dataset into project 'demo'").click()
    at.run()
    no_exception(at)
    return at


def test_source_upload_imports_all_files_in_one_go(store):
    at = open_page("data", project="demo")
    no_exception(at)
    source_tab = _tab(at, 0)
    source_tab.file_uploader[0].set_value([("a-en.tsv", GOOD, "text/tab-separated-values"),
                                           ("b-en.tsv", GOOD.replace(b"John", b"Mary"),
                                            "text/tab-separated-values")])
    source_tab.button[0].click()
    at.run()
    no_exception(at)
    assert any("Imported 4 sentences, 4 labelled" in s.value for s in at.success)
    got = store.sentences("demo", role="source")
    assert [s.tokens for s in got][:2] == [["John", "visited", "Paris"], ["Google", "is", "here"]]
    assert got[0].tags == ["B-PER", "O", "B-LOC"]


def test_errors_listed_with_file_and_line_and_nothing_imported(store):
    at = open_page("data", project="demo")
    tab = _tab(at, 0)
    tab.file_uploader[0].set_value([("good-en.tsv", GOOD, "text/plain"),
                                    ("bad-en.tsv", BAD, "text/plain"),
                                    ("worse-en.tsv", b"Berlin\tB-XYZ\n", "text/plain")])
    tab.button[0].click()
    at.run()
    no_exception(at)
    message = at.error[0].value
    assert "Nothing was imported" in message
    assert "bad-en.tsv:5:" in message and "invalid IOB2" in message
    assert "worse-en.tsv:1:" in message and "unknown label 'B-XYZ'" in message
    assert store.sentences("demo") == []  # the good file was not imported either
    # the fix names the checkbox in front of the user, not the command line's flag
    assert f'tick "{REPAIR_LABEL}"' in message and "--repair-iob" not in message
    assert REPAIR_LABEL in [c.label for c in tab.checkbox]


def test_tabs_differ_in_meaning(store):
    at = open_page("data", project="demo")
    no_exception(at)
    labels = [t.label for t in at.tabs]
    stems = [label.lower().rstrip("s") for label in labels]
    assert len(set(stems)) == len(stems), labels  # not "Translations" next to "Translation"


def test_datasets_form_repairs_stray_tags_with_its_own_checkbox(store, tmp_path):
    import datasets

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(
                                      names=["O", "B-PER", "I-PER", "B-ORG", "I-ORG",
                                             "B-LOC", "I-LOC"]))})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"tokens": [["in", "Berlin"]], "ner_tags": [[0, 6]]}, features=features)}).save_to_disk(
        str(tmp_path / "dd"))
    at = _import_dataset(tmp_path / "dd")
    message = at.error[0].value
    assert "invalid IOB2" in message and f'tick "{REPAIR_LABEL}"' in message
    boxes = [c for c in _tab(at, 0).checkbox if c.label == REPAIR_LABEL]
    assert len(boxes) == 2  # the upload form's and the datasets form's
    boxes[1].check()
    next(b for b in _tab(at, 0).button if b.label == "Import dataset into project 'demo'").click()
    at.run()
    no_exception(at)
    assert [s.tags for s in store.sentences("demo", role="source")] == [["O", "B-LOC"]]


def test_upload_over_the_size_limit_is_refused(store):
    at = open_page("data", project="demo")
    tab = _tab(at, 0)
    big = GOOD * (1_100_000 // len(GOOD) + 1)
    tab.file_uploader[0].set_value(("big-en.tsv", big, "text/plain"))
    tab.button[0].click()
    at.run()
    no_exception(at)
    assert "over the 1 MB limit" in at.error[0].value
    assert store.sentences("demo") == []


def test_target_text_and_gold_dev(store):
    at = open_page("data", project="demo")
    text_tab = _tab(at, 1)
    text_tab.selectbox[0].set_value("ar")
    text_tab.file_uploader[0].set_value(("pool.txt", "زار محمد القاهرة\n\nذهب علي إلى دبي\n"
                                         .encode(), "text/plain"))
    text_tab.button[0].click()
    at.run()
    no_exception(at)
    pool = store.sentences("demo", role="target", split="pool")
    assert [s.lang for s in pool] == ["ar", "ar"] and all(s.tags is None for s in pool)
    assert pool[0].tokens == ["زار", "محمد", "القاهرة"]

    gold_tab = _tab(at, 3)
    gold_tab.selectbox[0].set_value("sw")
    gold_tab.file_uploader[0].set_value(("dev-sw.tsv", b"Juma\tB-PER\nyuko\tO\nNairobi\tB-LOC\n",
                                         "text/plain"))
    gold_tab.button[0].click()
    at.run()
    no_exception(at)
    dev = store.sentences("demo", role="target", split="dev")
    assert [(s.lang, s.tags) for s in dev] == [("sw", ["B-PER", "O", "B-LOC"])]


def test_translation_tab_lists_every_backend(store):
    at = open_page("data", project="demo")
    no_exception(at)
    tab = _tab(at, 4)
    names = [o.split(" ")[0] for o in tab.selectbox[0].options]
    assert names == ["apertium", "dictionary", "hf", "file"]
    apertium = tab.selectbox[0].options[0]
    assert ("not installed" in apertium) == (shutil.which("apertium") is None)


def test_source_from_a_datasets_folder(store, tmp_path):
    from concner.corpus.export import write_export
    from concner.labels import LabelSchema
    from concner.sentence import Sentence

    sents = [Sentence.from_tokens("hf-1", "en", ["Mary", "works", "at", "Google"],
                                  ["B-PER", "O", "O", "B-ORG"]),
             Sentence.from_tokens("hf-2", "en", ["Berlin"], ["B-LOC"])]
    write_export({"train": sents}, LabelSchema(["PER", "ORG", "LOC"]), "hf", tmp_path / "dd")
    at = _import_dataset(tmp_path / "dd")
    assert any("Imported 2 sentences, 2 labelled" in s.value for s in at.success)
    got = store.sentences("demo", role="source")
    assert [(s.id, s.tokens, s.tags) for s in got] == [(s.id, s.tokens, s.tags) for s in sents]
    # a split that is not there: the error names it and nothing more is imported
    tab = _tab(at, 0)
    tab.text_input[1].input("validation")
    next(b for b in tab.button if b.label == "Import dataset into project 'demo'").click()
    at.run()
    assert "no split 'validation'" in at.error[0].value
    assert len(store.sentences("demo", role="source")) == 2
