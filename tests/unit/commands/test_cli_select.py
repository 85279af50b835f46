"""``concner select``: the next batch from a pool file, headless (rank order, exclude,
the diversity strategy's batches, teacher lookup, and clear errors for bad input)."""

from __future__ import annotations

import json

import pytest
import torch
from tiny import make_tiny_bundle

from concner.active import STRATEGIES, Diversity, get_strategy, score_pool
from concner.cli import main
from concner.commands.select import STRATEGY_NAMES
from concner.corpus import read_any
from concner.method.inference import Predictor

torch.set_num_threads(1)
WORDS = ["John", "lives", "in", "Paris", "the", "United", "Nations", "Berlin", "Google", "of",
         "xyzzy", "القاهرة", "מרחב", "😀"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    bundle = make_tiny_bundle(folder / "build", seed=3, vocab_words=WORDS)
    bundle.save(folder / "model")
    return folder / "model"


@pytest.fixture
def pool(tmp_path):
    lines = []
    for i in range(30):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(1 + i % 6)]
        lines.append(json.dumps({"id": f"p{i:02d}", "lang": "ar" if i % 5 == 0 else "de",
                                 "tokens": words}, ensure_ascii=False))
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def model_dir_bundle(model_dir):
    from concner.method.model import NerBundle

    return NerBundle.load(model_dir)


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_strategy_names_match_the_registry():
    assert set(STRATEGY_NAMES) == set(STRATEGIES)


def test_select_writes_the_strategys_top_n_with_suggestions(model_dir, pool, tmp_path, capsys):
    out = tmp_path / "next.jsonl"
    assert main(["select", "--model", str(model_dir), "--pool", str(pool), "--out", str(out),
                 "--strategy", "margin", "--n", "7", "--device", "cpu"]) == 0
    got = _records(out)
    sentences = read_any(str(pool), None)
    outputs = score_pool(Predictor(model_dir_bundle(model_dir), device="cpu"), sentences,
                         "margin", mc_passes=2)
    expected = [s.sentence_id for s in get_strategy("margin").select(outputs, 7)]
    assert [r["id"] for r in got] == expected
    assert [r["rank"] for r in got] == list(range(1, 8))
    assert {r["strategy"] for r in got} == {"margin"}
    scores = [r["score"] for r in got]
    assert scores == sorted(scores, reverse=True)
    for r in got:  # the model's prediction comes along as a suggestion
        assert len(r["tags"]) == len(r["tokens"])
        assert all(r["text"][s["start"]:s["end"]] == s["text"] for s in r["spans"])
    assert "scored 30 pool sentences with margin" in capsys.readouterr().err


def test_select_diversity_picks_batches_and_honours_exclude(model_dir, pool, tmp_path):
    exclude = tmp_path / "sent.txt"
    exclude.write_text("p01\np02\n\nunknown-id\n", encoding="utf-8")
    out = tmp_path / "next.jsonl"
    assert main(["select", "--model", str(model_dir), "--pool", str(pool), "--out", str(out),
                 "--strategy", "diversity", "--n", "6", "--batch", "3",
                 "--exclude", str(exclude), "--device", "cpu"]) == 0
    got = [r["id"] for r in _records(out)]
    sentences = [s for s in read_any(str(pool), None) if s.id not in {"p01", "p02"}]
    strategy = Diversity(base="mnlp")
    outputs = score_pool(Predictor(model_dir_bundle(model_dir), device="cpu"), sentences,
                         strategy, mc_passes=2)
    first = [s.sentence_id for s in strategy.select(outputs, 3)]
    second = [s.sentence_id for s in strategy.select(outputs, 3, exclude=set(first))]
    assert got == first + second
    assert not {"p01", "p02"} & set(got)
    assert {r["strategy"] for r in _records(out)} == {"diversity/mnlp"}


def test_select_reports_what_to_fix(model_dir, pool, tmp_path, capsys):
    out = tmp_path / "next.jsonl"
    base = ["select", "--model", str(model_dir), "--out", str(out), "--device", "cpu"]
    # teacher/student without a teacher folder
    assert main([*base, "--pool", str(pool), "--strategy", "teacher_student"]) == 2
    assert "--teacher" in capsys.readouterr().err
    # duplicate ids in the pool
    dup = tmp_path / "dup.jsonl"
    dup.write_text(pool.read_text(encoding="utf-8") * 2, encoding="utf-8")
    assert main([*base, "--pool", str(dup)]) == 2
    assert "occur more than once (first: p00)" in capsys.readouterr().err
    # everything excluded
    every = tmp_path / "every.txt"
    every.write_text("\n".join(f"p{i:02d}" for i in range(30)), encoding="utf-8")
    assert main([*base, "--pool", str(pool), "--exclude", str(every)]) == 2
    assert "nothing is left to pick" in capsys.readouterr().err
    # an empty pool file
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert main([*base, "--pool", str(empty)]) == 2
    assert "no sentences found (the file is empty" in capsys.readouterr().err
    # a missing exclude file, and a bad --n
    assert main([*base, "--pool", str(pool), "--exclude", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt" in capsys.readouterr().err
    assert main([*base, "--pool", str(pool), "--n", "0"]) == 2
    assert not out.exists()  # no error left a file behind


def test_select_uses_the_teacher_saved_inside_the_model_folder(model_dir, pool, tmp_path):
    teacher = make_tiny_bundle(tmp_path / "t", seed=9, vocab_words=WORDS)
    student = model_dir_bundle(model_dir)
    folder = tmp_path / "student"
    student.save(folder)
    teacher.save(folder / "teacher")
    out = tmp_path / "next.jsonl"
    assert main(["select", "--model", str(folder), "--pool", str(pool), "--out", str(out),
                 "--strategy", "teacher_student", "--n", "5", "--device", "cpu"]) == 0
    got = _records(out)
    assert len(got) == 5 and all(r["score"] > 0 for r in got)
