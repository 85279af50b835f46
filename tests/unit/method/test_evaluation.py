"""Strict IOB2 entity evaluation: hand-computed figures, errors and the printed table."""

from __future__ import annotations

import pytest

from concner.errors import DataFormatError, LabelSchemaError
from concner.method.evaluation import evaluate, format_table
from concner.sentence import Sentence


def _gold():
    return [
        Sentence.from_tokens("en1", "en", ["John", "Smith", "in", "Paris"],
                             ["B-PER", "I-PER", "O", "B-LOC"]),
        Sentence.from_tokens("es1", "es", ["ONU", "dijo"], ["B-ORG", "O"]),
        Sentence.from_tokens("es2", "es", ["Nueva", "York"], ["B-LOC", "I-LOC"]),
    ]


PREDICTED = [
    ["B-PER", "I-PER", "O", "O"],  # PER right, LOC missed
    ["B-ORG", "O"],  # right
    ["B-LOC", "O"],  # boundary wrong: strict mode counts it as an error
]


def test_hand_computed_micro_label_and_language_figures():
    report = evaluate(_gold(), PREDICTED)
    # gold entities 4, predicted 3, correct 2
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 4)
    assert report["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert report["support"] == 4 and report["n_sentences"] == 3
    assert report["per_label"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert report["per_label"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert report["per_label"]["ORG"]["f1"] == 1.0
    en, es = report["per_lang"]["en"], report["per_lang"]["es"]
    assert (en["precision"], en["recall"], en["support"], en["n_sentences"]) == (1.0, 0.5, 2, 1)
    assert en["f1"] == pytest.approx(2 / 3)
    assert (es["precision"], es["recall"], es["f1"], es["support"]) == (0.5, 0.5, 0.5, 2)


def test_strict_mode_rejects_entities_opening_with_i():
    gold = [Sentence.from_tokens("a", "en", ["John", "Smith"], ["B-PER", "I-PER"])]
    report = evaluate(gold, [["I-PER", "I-PER"]])
    assert report["f1"] == 0.0 and report["support"] == 1
    assert evaluate(gold, [["B-PER", "I-PER"]])["f1"] == 1.0


def test_no_entities_anywhere_scores_zero_without_warnings(recwarn):
    gold = [Sentence.from_tokens("a", "en", ["the", "city"], ["O", "O"])]
    report = evaluate(gold, [["O", "O"]])
    assert report["f1"] == 0.0 and report["support"] == 0 and report["per_label"] == {}
    assert len(recwarn) == 0


def test_input_errors_say_what_to_fix():
    gold = _gold()
    with pytest.raises(DataFormatError, match="2 predictions for 3 gold"):
        evaluate(gold, PREDICTED[:2])
    with pytest.raises(LabelSchemaError, match="es2: 1 predicted tags for 2 words"):
        evaluate(gold, PREDICTED[:2] + [["O"]])
    unlabelled = [Sentence.from_tokens("u1", "en", ["x"])]
    with pytest.raises(DataFormatError, match="u1 .* no gold tags"):
        evaluate(unlabelled, [["O"]])
    bad = [Sentence.from_tokens("b1", "en", ["x", "y"], ["O", "I-PER"])]
    with pytest.raises(LabelSchemaError, match="b1.*repair"):
        evaluate(bad, [["O", "O"]])


def test_table_lists_every_scope_in_percent():
    report = evaluate(_gold(), PREDICTED)
    table = format_table(report)
    lines = {line.split("  ")[0].strip(): line for line in table.splitlines()[1:]}
    assert set(lines) == {"overall", "label LOC", "label ORG", "label PER", "lang en", "lang es"}
    assert lines["lang es"].split()[-4:] == ["50.00", "50.00", "50.00", "2"]
    assert lines["overall"].split()[-4:] == [f"{100 * 2 / 3:.2f}", "50.00",
                                             f"{100 * report['f1']:.2f}", "4"]


def test_evaluate_command_prints_table_and_json(tmp_path, capsys):
    import json

    import torch
    from tiny import make_tiny_bundle

    from concner.cli import main
    from concner.corpus import write_conll

    torch.set_num_threads(1)
    bundle = make_tiny_bundle(tmp_path)
    bundle.save(tmp_path / "model")
    data = tmp_path / "dev.tsv"
    write_conll(_gold()[:1], data)
    out = tmp_path / "report.json"
    code = main(["evaluate", "--model", str(tmp_path / "model"), "--data", str(data),
                 "--lang", "en", "--json", str(out), "--device", "cpu"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["support"] == 2 and set(report["per_lang"]) == {"en"}
    assert capsys.readouterr().out.strip() == format_table(report)
