"""``concner project next``: the sentences to correct or label next, in the order the
worker stored, for either side and one language, with clear errors before any model."""

from __future__ import annotations

import json

import pytest
from storekit import make_sentences

from concner.cli import main
from concner.store import Store


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Store:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    st = Store(url)
    st.create_project("p", source_lang="en", target_langs=["de", "ar"],
                      entity_types=["PER", "ORG", "LOC"], encoder="enc")
    st.import_sentences("p", make_sentences("src", 4, "en", seed=1), role="source", split="train")
    st.import_sentences("p", make_sentences("en-pool-", 3, "en", seed=2, labelled=False),
                        role="source", split="pool")
    for k, lang in enumerate(("de", "ar")):
        st.import_sentences("p", make_sentences(f"{lang}-pool-", 4, lang, seed=3 + k,
                                                labelled=False), role="target", split="pool")
    yield st
    st.close()


def _predict(store, order: dict[str, int]) -> None:
    """An active model whose pool prediction stored ``order`` (sentence id -> rank)."""
    mv = store.add_model_version("p", run_id=None, path="unused", mean_f1=None, version=1)
    store.activate_model_version(mv.id)
    by_id = {s.id: s for s in store.sentences("p")}
    rows = [(by_id[sid].meta["db_id"], ["O"] * len(by_id[sid].tokens), [], 0.5, 1.0 / rank, rank)
            for sid, rank in order.items()]
    store.save_predictions(mv.id, rows, strategy="diversity/mnlp")


def test_next_lists_each_side_in_the_stored_order(store, capsys):
    target = ["ar-pool-2", "de-pool-0", "de-pool-3", "ar-pool-0", "de-pool-1", "de-pool-2",
              "ar-pool-1", "ar-pool-3"]
    source = ["en-pool-1", "en-pool-2", "en-pool-0"]
    _predict(store, {**{sid: k for k, sid in enumerate(target, 1)},
                     **{sid: k for k, sid in enumerate(source, 1)}})
    assert main(["project", "next", "p", "--n", "5", "--json"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [g["id"] for g in got] == target[:5]
    assert [g["rank"] for g in got] == [1, 2, 3, 4, 5] and got[0]["strategy"] == "diversity/mnlp"
    assert main(["project", "next", "p", "--side", "source"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines()] == source
    assert main(["project", "next", "p", "--lang", "ar", "--json"]) == 0
    got = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert got == [sid for sid in target if sid.startswith("ar")]
    # a labelled sentence is no longer asked for
    (first,) = [s for s in store.sentences("p", lang="ar") if s.id == "ar-pool-2"]
    store.add_annotation("p", first.id, ["O"] * len(first.tokens), author="ann",
                         origin="argilla")
    assert main(["project", "next", "p", "--n", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "de-pool-0"


def test_next_says_what_to_run_first(store, capsys):
    assert main(["project", "next", "p"]) == 2
    assert "no active model yet" in capsys.readouterr().err
    mv = store.add_model_version("p", run_id=None, path="unused", mean_f1=None, version=1)
    store.activate_model_version(mv.id)
    assert main(["project", "next", "p"]) == 2
    assert "has not predicted the pool yet" in capsys.readouterr().err
    assert main(["project", "next", "nope"]) == 2
    assert main(["project", "next", "p", "--n", "0"]) == 2
