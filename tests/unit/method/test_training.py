"""Tests of concner.method.training (and concner.method.optim) with a tiny offline BERT."""

from __future__ import annotations

import json
import random

import pytest
import torch
from tiny import make_tiny_encoder_dir

from concner.config import TrainingConfig, config_from_dict
from concner.errors import ConfigError, DataFormatError, JobCancelled
from concner.method.evaluation import evaluate
from concner.method.inference import Predictor
from concner.method.model import NerBundle
from concner.method.optim import linear_schedule, parameter_groups
from concner.method.training import ProgressEvent, TrainData, pair_translations, train
from concner.sentence import Sentence

torch.set_num_threads(1)

PER = [["John", "Smith"], ["Mary"], ["John"], ["Mary", "Smith"]]
LOC = [["Paris"], ["London"], ["Berlin"], ["New", "York"]]
ORG = [["Google"], ["Microsoft"], ["United", "Nations"]]


def _entity(words, etype):
    return list(words), [f"B-{etype}"] + [f"I-{etype}"] * (len(words) - 1)


def make_sentences(n: int, lang: str = "en", seed: int = 0) -> list[Sentence]:
    """Synthetic labelled sentences over the tiny vocabulary (three templates)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        per, loc, org = (_entity(rng.choice(PER), "PER"), _entity(rng.choice(LOC), "LOC"),
                         _entity(rng.choice(ORG), "ORG"))
        if k % 3 == 0:
            parts = [per, (["lives", "in"], ["O", "O"]), loc]
        elif k % 3 == 1:
            parts = [per, (["works", "for"], ["O", "O"]), org, (["in"], ["O"]), loc]
        else:
            parts = [org, (["is", "a", "company", "in"], ["O"] * 4), loc]
        tokens = [t for words, _ in parts for t in words]
        tags = [t for _, ts in parts for t in ts]
        out.append(Sentence.from_tokens(f"{lang}-{k}", lang, tokens, tags))
    return out


def reverse_translation(sentence: Sentence, lang: str = "es") -> Sentence:
    """A stand-in 'translation': the same chunks (entities kept whole) in reverse order."""
    chunks, i, tags = [], 0, sentence.tags
    while i < len(tags):
        j = i + 1
        if tags[i] != "O":
            while j < len(tags) and tags[j].startswith("I-"):
                j += 1
        chunks.append((sentence.tokens[i:j], tags[i:j]))
        i = j
    chunks.reverse()
    return Sentence.from_tokens(sentence.id.replace("en-", f"{lang}-"), lang,
                                [t for w, _ in chunks for t in w],
                                [t for _, ts in chunks for t in ts],
                                meta={"source_id": sentence.id})


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return str(make_tiny_encoder_dir(tmp_path_factory.mktemp("tiny") / "encoder"))


@pytest.fixture(scope="module")
def source():
    return make_sentences(20)


@pytest.fixture(scope="module")
def translations(source):
    return [reverse_translation(s) for s in source]


def make_config(encoder_dir, *, full=False, kd=False, **training):
    values = {"epochs": 12, "batch_size": 4, "learning_rate": 3e-3, "head_learning_rate": 1e-2,
              "warmup_ratio": 0.1, "eval_every_epoch": False, "kd_epochs": 2, "seed": 3}
    values.update(training)
    loss = {"use_translation": full, "lambda_lcl": 0.5 if full else 0.0,
            "lambda_tcl": 0.5 if full else 0.0, "kd": kd}
    return config_from_dict({"model": {"encoder": encoder_dir}, "loss": loss,
                             "training": values}, env={})


def weights(bundle: NerBundle) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in bundle.model.state_dict().items()}


# ---------------------------------------------------------------- learning
def test_overfits_with_ce_only(encoder_dir, source):
    result = train(make_config(encoder_dir), TrainData(source, dev={"en": source}))
    assert result.dev_metrics["en"]["f1"] > 0.9
    assert all(set(h["losses"]) == {"ce"} for h in result.history)  # LCL/TCL not computed
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 5


def test_overfits_with_full_stage1_loss_and_translations(encoder_dir, source, translations):
    data = TrainData(source, translations, dev={"en": source, "es": translations})
    result = train(make_config(encoder_dir, full=True), data)
    assert result.dev_metrics["en"]["f1"] > 0.9
    assert result.dev_metrics["es"]["f1"] > 0.9
    first, last = result.history[0]["losses"], result.history[-1]["losses"]
    assert set(first) == {"ce", "lcl", "tcl"}
    assert last["tcl"] < first["tcl"] and last["lcl"] < first["lcl"]
    # 20 pairs in batches of 4 pairs (8 sentences per forward pass)
    assert result.history[0]["steps"] == 5


def test_same_seed_same_run_and_caller_rng_untouched(encoder_dir, source, translations):
    config = make_config(encoder_dir, full=True, epochs=2)
    data = TrainData(source, translations)
    torch.manual_seed(123)
    a = train(config, data)
    after = torch.rand(3)
    b = train(config, data)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # train() leaves the global RNG as it was
    assert [h["losses"] for h in a.history] == [h["losses"] for h in b.history]
    wa, wb = weights(a.bundle), weights(b.bundle)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(make_config(encoder_dir, full=True, epochs=2, seed=4), data)
    assert [h["loss"] for h in c.history] != [h["loss"] for h in a.history]


def _swap_types(sentence: Sentence) -> Sentence:
    swap = {"PER": "LOC", "LOC": "PER", "ORG": "ORG"}
    return sentence.with_tags([t if t == "O" else f"{t[:2]}{swap[t[2:]]}" for t in sentence.tags])


def test_best_epoch_is_restored(encoder_dir, source):
    """Training does not depend on the dev set, so a run selected on a misleading dev set
    (PER and LOC swapped: it peaks early) must return the weights of that early epoch,
    whose true F1 the honest run's history records."""
    config = make_config(encoder_dir, epochs=5, eval_every_epoch=True, learning_rate=1e-3,
                         head_learning_rate=3e-3)
    honest = train(config, TrainData(source, dev={"en": source[:10]}))
    misled = train(config, TrainData(source, dev={"en": [_swap_types(s) for s in source[:10]]}))
    true_f1 = [h["dev"]["en"] for h in honest.history]
    misled_scores = [h["score"] for h in misled.history]
    best = misled_scores.index(max(misled_scores))
    assert true_f1[best] < true_f1[-1]  # the early epoch is really a different model
    assert misled.dev_metrics["en"]["f1"] == pytest.approx(misled_scores[best])
    predictor = Predictor(misled.bundle, batch_size=8, device="cpu")
    again = evaluate(source[:10], [p.tags for p in predictor.predict(source[:10])])
    assert again["f1"] == pytest.approx(true_f1[best])
    assert honest.dev_metrics["en"]["f1"] == pytest.approx(max(true_f1))


def test_early_stop_ends_a_stage_after_patience_epochs_without_a_better_score(encoder_dir,
                                                                              source):
    """On a misleading dev set (its score stalls), patience 1 stops at the first epoch
    that does not beat the ones before it; the epochs it ran are the full run's (the same
    schedule), and the best of them is the model returned."""
    dev = {"en": [_swap_types(s) for s in source[:10]]}
    values = {"epochs": 5, "eval_every_epoch": True, "learning_rate": 1e-3,
              "head_learning_rate": 3e-3}
    full = train(make_config(encoder_dir, **values), TrainData(source, dev=dev))
    stopped = train(make_config(encoder_dir, early_stop_patience=1, **values),
                    TrainData(source, dev=dev))
    scores = [h["score"] for h in full.history]
    ran = next(e for e in range(2, len(scores) + 1) if scores[e - 1] <= max(scores[:e - 1]))
    assert ran < len(scores)  # it does stop early here
    assert [h["score"] for h in stopped.history] == scores[:ran]
    assert stopped.dev_metrics["en"]["f1"] == pytest.approx(max(scores[:ran]))
    predictor = Predictor(stopped.bundle, batch_size=8, device="cpu")
    again = evaluate(dev["en"], [p.tags for p in predictor.predict(dev["en"])])
    assert again["f1"] == pytest.approx(max(scores[:ran]))


# ---------------------------------------------------------------- distillation
def test_kd_stage_runs_and_changes_the_student(encoder_dir, source, translations):
    unlabelled = [t.with_tags(None) for t in translations]
    base_config = make_config(encoder_dir, full=True, epochs=3)
    base = train(base_config, TrainData(source, translations))
    kd = train(make_config(encoder_dir, full=True, epochs=3, kd=True),
               TrainData(source, translations, unlabelled_target=unlabelled))
    stages = [h["stage"] for h in kd.history]
    assert stages == ["stage1"] * 3 + ["kd"] * 2
    assert set(kd.history[-1]["losses"]) == {"kd", "ce"}  # lambda_src > 0: source CE too
    assert [h["losses"] for h in kd.history[:3]] == [h["losses"] for h in base.history]
    wb, wk = weights(base.bundle), weights(kd.bundle)
    assert any(not torch.equal(wb[k], wk[k]) for k in wb)


def test_kd_distils_on_a_fixed_seed_sample_of_at_most_kd_max_sentences(encoder_dir, source,
                                                                        translations):
    unlabelled = [t.with_tags(None) for t in translations]
    assert len(unlabelled) > 6
    capped = train(make_config(encoder_dir, epochs=1, kd=True, kd_max_sentences=6, batch_size=2),
                   TrainData(source, unlabelled_target=unlabelled))
    whole = train(make_config(encoder_dir, epochs=1, kd=True, kd_max_sentences=0, batch_size=2),
                  TrainData(source, unlabelled_target=unlabelled))
    kd_steps = [h["steps"] for h in capped.history if h["stage"] == "kd"]
    assert kd_steps == [3, 3]  # 6 sentences in batches of 2, each KD epoch
    assert next(h["steps"] for h in whole.history if h["stage"] == "kd") == -(-len(unlabelled) // 2)
    again = train(make_config(encoder_dir, epochs=1, kd=True, kd_max_sentences=6, batch_size=2),
                  TrainData(source, unlabelled_target=unlabelled))
    assert [h["losses"] for h in again.history] == [h["losses"] for h in capped.history]


def test_distillation_only_with_mse_from_an_existing_model(encoder_dir, source, translations):
    teacher = train(make_config(encoder_dir, epochs=2), TrainData(source)).bundle
    config = config_from_dict({"model": {"encoder": encoder_dir},
                               "loss": {"kd": True, "kd_loss": "mse", "lambda_src": 0.0},
                               "training": {"epochs": 0, "kd_epochs": 1, "batch_size": 8,
                                            "learning_rate": 3e-3}}, env={})
    events: list[ProgressEvent] = []
    unlabelled = [t.with_tags(None) for t in translations]
    result = train(config, TrainData([], unlabelled_target=unlabelled), init=teacher,
                   callback=events.append)
    assert [(h["stage"], set(h["losses"])) for h in result.history] == [("kd", {"kd"})]
    assert {e.stage for e in events} == {"kd"} and events[-1].step == events[-1].total_steps == 3
    before, after = weights(teacher), weights(result.bundle)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_missing_translations_or_unlabelled_text_warn_and_train_what_exists(
        encoder_dir, source, caplog):
    with caplog.at_level("WARNING", logger="concner.method.training"):
        result = train(make_config(encoder_dir, full=True, kd=True, epochs=1), TrainData(source))
    assert [h["stage"] for h in result.history] == ["stage1"]  # no distillation stage
    assert set(result.history[0]["losses"]) == {"ce", "lcl"}  # no TCL without translations
    text = caplog.text
    assert "no translations" in text and "distillation (stage 2) is skipped" in text


# ---------------------------------------------------------------- control
def test_job_cancelled_stops_training(encoder_dir, source):
    events: list[ProgressEvent] = []

    def callback(event):
        events.append(event)
        if event.step == 3:
            raise JobCancelled("stop")

    threads = torch.get_num_threads()
    with pytest.raises(JobCancelled):
        train(make_config(encoder_dir, num_threads=2), TrainData(source), callback=callback)
    assert [e.step for e in events] == [1, 2, 3]
    assert all(e.stage == "stage1" and e.total_steps == 12 * 5 for e in events)
    assert torch.get_num_threads() == threads


def test_progress_events(encoder_dir, source):
    events: list[ProgressEvent] = []
    result = train(make_config(encoder_dir, epochs=2, eval_every_epoch=True),
                   TrainData(source, dev={"en": source[:5], "de": []}), callback=events.append)
    assert list(result.dev_metrics) == ["en"]  # a language without dev sentences is skipped
    steps = [e for e in events if e.stage == "stage1"]
    evals = [e for e in events if e.stage == "eval"]
    assert [e.step for e in steps] == list(range(1, 11))
    assert all(e.loss is not None and "ce" in e.losses for e in steps)
    assert [e.epoch for e in evals] == [1, 2]
    assert set(evals[0].metrics) == {"en", "score"}


def test_select_langs_evaluates_the_others_once_at_the_end(encoder_dir, source, translations):
    dev = {"en": source[:6], "es": translations[:6]}
    result = train(make_config(encoder_dir, epochs=2, eval_every_epoch=True, select_langs=["es"]),
                   TrainData(source, dev=dev))
    assert [set(h["dev"]) for h in result.history] == [{"es"}, {"es"}]
    assert list(result.dev_metrics) == ["en", "es"]
    assert result.dev_metrics["es"]["f1"] == pytest.approx(max(h["score"] for h in result.history))


def test_freeze_embeddings_and_warm_start(encoder_dir, source):
    first = train(make_config(encoder_dir, epochs=1), TrainData(source))
    init_weights = weights(first.bundle)
    config = config_from_dict({"model": {"encoder": encoder_dir, "freeze_embeddings": True},
                               "loss": {"use_translation": False},
                               "training": {"epochs": 1, "batch_size": 4}}, env={})
    second = train(config, TrainData(source), init=first.bundle)
    after = weights(second.bundle)
    name = "encoder.embeddings.word_embeddings.weight"
    assert torch.equal(after[name], init_weights[name])  # frozen
    changed = [k for k in after if not torch.equal(after[k], init_weights[k])]
    assert "classifier.weight" in changed and any(k.startswith("encoder.encoder.") for k in changed)
    assert all(torch.equal(v, weights(first.bundle)[k]) for k, v in init_weights.items())
    # warm-starting again without freezing trains the embeddings (the flag does not stick)
    third = train(make_config(encoder_dir, epochs=1), TrainData(source), init=second.bundle)
    assert not torch.equal(weights(third.bundle)[name], after[name])


def test_data_errors(encoder_dir, source, translations):
    with pytest.raises(DataFormatError, match="no tags"):
        train(make_config(encoder_dir), TrainData([source[0].with_tags(None)] + source[1:]))
    with pytest.raises(DataFormatError, match="dev sentences"):
        train(make_config(encoder_dir, epochs=1),
              TrainData(source, dev={"es": [translations[0].with_tags(None)]}))
    with pytest.raises(ConfigError, match="select_langs"):
        train(make_config(encoder_dir, epochs=1, select_langs=["de"]),
              TrainData(source, dev={"en": source[:3]}))


def test_pair_translations(source, translations):
    assert pair_translations(source, translations[::-1]) == [(19 - j, j) for j in range(20)]
    no_ids = [t.__class__(t.id, t.lang, t.tokens, t.tags) for t in translations]
    assert pair_translations(source, no_ids) == [(k, k) for k in range(20)]
    with pytest.raises(DataFormatError, match="one translation per source"):
        pair_translations(source, no_ids[:5])
    stray = Sentence.from_tokens("x", "es", ["Paris"], ["B-LOC"], meta={"source_id": "nope"})
    with pytest.raises(DataFormatError, match="nope"):
        pair_translations(source, [stray])
    with pytest.raises(DataFormatError, match="out of range"):
        pair_translations(source, translations, pairs=[(0, 25)])


# ---------------------------------------------------------------- optimiser plumbing
def test_parameter_groups_and_schedule(encoder_dir):
    from concner.config import ModelConfig
    from concner.labels import LabelSchema
    from concner.method.model import build_bundle
    from concner.method.optim import freeze_word_embeddings

    bundle = build_bundle(encoder_dir, LabelSchema(["PER"]), ModelConfig())
    frozen = freeze_word_embeddings(bundle.model)
    config = TrainingConfig(learning_rate=1e-4, head_learning_rate=1e-3, weight_decay=0.01)
    groups = {g["name"]: g for g in parameter_groups(bundle.model, config)}
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    named = dict(bundle.model.named_parameters())
    assert id(named["encoder.embeddings.word_embeddings.weight"]) not in set().union(*ids.values())
    assert frozen == named["encoder.embeddings.word_embeddings.weight"].numel()
    assert id(named["classifier.bias"]) in ids["head-no-decay"]
    assert id(named["classifier.weight"]) in ids["head"]
    assert id(named["encoder.embeddings.LayerNorm.weight"]) in ids["encoder-no-decay"]
    assert groups["head"]["lr"] == 1e-3 and groups["encoder"]["lr"] == 1e-4
    assert groups["encoder-no-decay"]["weight_decay"] == 0.0
    assert groups["encoder"]["weight_decay"] == 0.01

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_schedule(opt, total_steps=10, warmup_ratio=0.2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])


# ---------------------------------------------------------------- the command
def test_train_command_writes_model_and_metrics(encoder_dir, source, translations, tmp_path,
                                                capsys):
    from concner.cli import main
    from concner.corpus import read_conll, write_conll, write_jsonl

    write_conll(source, tmp_path / "train-en.tsv")
    write_conll(source[:6], tmp_path / "dev-en.tsv")
    write_conll(translations[:6], tmp_path / "dev-es.tsv")
    # translations name their source by id, as `concner translate` writes them
    ids = [s.id for s in read_conll(tmp_path / "train-en.tsv", "en")]
    named = [t.__class__(t.id, t.lang, t.tokens, t.tags, meta={"source_id": i})
             for t, i in zip(translations, ids)]
    write_jsonl(named, tmp_path / "tr-es.jsonl")
    (tmp_path / "run.toml").write_text(f"""
[data]
source_lang = "en"
target_langs = ["es"]
train_sample = 12
[model]
encoder = "{encoder_dir}"
[loss]
lambda_lcl = 0.5
lambda_tcl = 0.5
kd = false
[training]
epochs = 2
batch_size = 4
learning_rate = 3e-3
[paths]
train = "{tmp_path}/train-{{lang}}.tsv"
translations = "{tmp_path}/tr-{{lang}}.jsonl"
dev = {{ en = "{tmp_path}/dev-en.tsv", es = "{tmp_path}/dev-es.tsv" }}
""", encoding="utf-8")
    out = tmp_path / "model"
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "en" in printed and "es" in printed and "mean" in printed
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["dev_f1"]) == {"en", "es"}
    assert metrics["seen"]["source"]["sentences"] == 12
    assert metrics["seen"]["translated"]["sentences"] == 12  # only the sampled sentences'
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert set(metrics["history"][0]["losses"]) == {"ce", "lcl", "tcl"}
    reloaded = NerBundle.load(out)
    preds = Predictor(reloaded, device="cpu").predict(source[:6])
    assert evaluate(source[:6], [p.tags for p in preds])["f1"] == pytest.approx(
        metrics["dev_f1"]["en"])


def test_train_command_errors(encoder_dir, tmp_path, capsys):
    from concner.cli import main

    (tmp_path / "a.toml").write_text(f'[model]\nencoder = "{encoder_dir}"\n'
                                     f'[paths]\ntrain = "{tmp_path}/missing.tsv"\n')
    assert main(["train", "--config", str(tmp_path / "a.toml")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "a.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "use_translation" in capsys.readouterr().err  # default true, no translations given
    (tmp_path / "a.toml").write_text(f'[model]\nencoder = "{encoder_dir}"\n'
                                     '[loss]\nuse_translation = false\nkd = false\n'
                                     f'[paths]\ntrain = "{tmp_path}/missing.tsv"\n')
    assert main(["train", "--config", str(tmp_path / "a.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing.tsv" in err and "not found" in err


# ---------------------------------------------------------------- batches
def test_stage1_batch_rows_and_tcl_pairs(source, translations):
    from tiny import make_tiny_tokenizer

    from concner.labels import LabelSchema
    from concner.method.batches import Stage1Batches
    from concner.method.encoding import Collator, encode_sentences

    tok, schema = make_tiny_tokenizer(), LabelSchema(["PER", "ORG", "LOC"])
    src, _ = encode_sentences(tok, source[:3], schema, 64)
    tr, _ = encode_sentences(tok, translations[:3], schema, 64)
    # source 0 translated twice (two languages), source 1 once, source 2 never
    batches = Stage1Batches(src, tr, [(0, 0), (0, 1), (1, 2)], batch_size=8, seed=0,
                            collate=Collator(tok.pad_token_id), device=torch.device("cpu"))
    assert batches.units == [(0, 0), (0, 1), (1, 2), (2, None)]
    batch = batches.make([3, 0, 1, 2])
    # rows: sources 2, 0, 1 once each, then translations 0, 1, 2
    expected = [src[2], src[0], src[1], tr[0], tr[1], tr[2]]
    for row, enc in enumerate(expected):
        assert batch["input_ids"][row, :len(enc)].tolist() == enc.input_ids
    # TCL: one pair per distinct translated source (source 0 with its first translation)
    assert batch["tcl_src"].tolist() == [1, 2] and batch["tcl_tgt"].tolist() == [3, 5]
    assert len(batches) == 1 and sum(len(ids) for ids in batches.sampler) == 4
