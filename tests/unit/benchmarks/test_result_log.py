"""benchmarks.common.ResultLog: the resumable row files every benchmark appends to."""

from __future__ import annotations

import json

import pytest

from benchmarks.common import ResultLog


def test_two_logs_on_one_file_see_each_other_cells(tmp_path):
    """Two benchmark processes append to one file: each must see the other's finished
    cells, or it redoes them and the table counts the cell twice."""
    path = tmp_path / "rows.jsonl"
    first, second = ResultLog(path, ("system", "seed")), ResultLog(path, ("system", "seed"))
    assert not first.done(system="a", seed=1) and first.rows == []
    second.append({"system": "a", "seed": 1, "f1": 0.5})
    assert first.done(system="a", seed=1)
    first.append({"system": "b", "seed": 1, "f1": 0.6})
    assert second.done(system="b", seed=1)
    assert [r["system"] for r in second.rows] == ["a", "b"]
    assert all("provenance" in r for r in first.rows)


def test_a_line_still_being_written_is_not_read_yet(tmp_path):
    path = tmp_path / "rows.jsonl"
    whole = json.dumps({"system": "a", "seed": 1})
    path.write_text(whole + "\n" + whole[:7], encoding="utf-8")  # the writer is mid-line
    log = ResultLog(path, ("system", "seed"))
    assert [r["system"] for r in log.rows] == ["a"]
    path.write_text(whole + "\n" + json.dumps({"system": "b", "seed": 1}) + "\n",
                    encoding="utf-8")
    assert [r["system"] for r in log.rows] == ["a", "b"]


def test_a_broken_line_names_the_file_and_line_and_leaves_the_file_alone(tmp_path):
    path = tmp_path / "rows.jsonl"
    text = json.dumps({"system": "a", "seed": 1}) + "\n{not json\n[1, 2]\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"rows\.jsonl line 2 is not a JSON row"):
        _ = ResultLog(path, ("system", "seed")).rows
    path.write_text(json.dumps({"system": "a", "seed": 1}) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2 is not a JSON object"):
        ResultLog(path, ("system", "seed")).done(system="a", seed=1)
    assert path.read_text(encoding="utf-8").count("\n") == 2  # nothing was rewritten
