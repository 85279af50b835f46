"""Training only the used word-embedding rows (concner.method.embedding_rows) gives the dense
matrix's result, keeps the whole vocabulary, and is invisible to prediction."""

from __future__ import annotations

import pytest
import torch
from test_training import make_config, make_sentences, reverse_translation
from tiny import make_tiny_encoder_dir
from transformers import AutoModel

from concner.config import ModelConfig
from concner.labels import LabelSchema
from concner.method.embedding_rows import train_used_rows, used_piece_ids
from concner.method.inference import Predictor
from concner.method.model import build_bundle
from concner.method.training import TrainData, train
from concner.sentence import Sentence

torch.set_num_threads(1)

SCHEMA = LabelSchema(["PER", "ORG", "LOC"])

WORD_KEY = "encoder.embeddings.word_embeddings.weight"
#: dev text with pieces no training sentence has (the tiny vocabulary spells them by letter)
UNSEEN = Sentence.from_tokens("dev-unseen", "es", ["Zoe", "visited", "Quito", "?"],
                              ["B-PER", "O", "B-LOC", "O"])


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return str(make_tiny_encoder_dir(tmp_path_factory.mktemp("tiny") / "encoder"))


def _train(encoder_dir, rows: str):
    source = make_sentences(16)
    translations = [reverse_translation(s) for s in source]
    unlabelled = [s.with_tags(None) for s in make_sentences(8, lang="es", seed=5)]
    config = make_config(encoder_dir, full=True, kd=True, epochs=2, kd_epochs=1,
                         eval_every_epoch=True, embedding_rows=rows, weight_decay=0.1)
    data = TrainData(source, translations, unlabelled_target=unlabelled,
                     dev={"es": translations[:4] + [UNSEEN]})
    return train(config, data), source, translations, unlabelled


def test_training_the_used_rows_matches_training_the_dense_matrix(encoder_dir):
    dense, source, translations, unlabelled = _train(encoder_dir, "all")
    used_only, *_ = _train(encoder_dir, "used")
    pretrained_matrix = AutoModel.from_pretrained(encoder_dir).get_input_embeddings().weight
    a = {k: v.detach() for k, v in dense.bundle.model.state_dict().items()}
    b = {k: v.detach() for k, v in used_only.bundle.model.state_dict().items()}
    assert a.keys() == b.keys()
    assert b[WORD_KEY].shape == a[WORD_KEY].shape  # the whole vocabulary is still there
    tokenizer = dense.bundle.tokenizer
    texts = [s.tokens for s in source + translations + unlabelled]
    ids = used_piece_ids(tokenizer(texts, is_split_into_words=True)["input_ids"],
                         always=tokenizer.all_special_ids)
    unused = sorted(set(range(a[WORD_KEY].shape[0])) - set(ids))
    assert len(ids) > 20 and len(unused) > 20
    for key, value in a.items():
        if key != WORD_KEY:
            torch.testing.assert_close(b[key], value, rtol=1e-4, atol=1e-5, msg=key)
    torch.testing.assert_close(b[WORD_KEY][ids], a[WORD_KEY][ids], rtol=1e-4, atol=1e-5)
    # unused rows: dense AdamW only decays them; here they keep their pretrained values
    pretrained = pretrained_matrix.detach()[unused]
    assert torch.equal(b[WORD_KEY][unused], pretrained)
    assert not torch.equal(a[WORD_KEY][unused], pretrained)
    torch.testing.assert_close(a[WORD_KEY][unused], pretrained, rtol=1e-2, atol=1e-6)
    # and the dev text with unseen pieces was scored the same way by both runs
    assert dense.history[-1]["dev"] == pytest.approx(used_only.history[-1]["dev"], abs=1e-6)


def test_the_swap_is_invisible_to_prediction_and_writes_the_trained_rows_back(encoder_dir):
    first = build_bundle(encoder_dir, SCHEMA, ModelConfig(encoder=encoder_dir))
    seen = make_sentences(3)
    ids = used_piece_ids(first.tokenizer([s.tokens for s in seen],
                                         is_split_into_words=True)["input_ids"],
                         always=first.tokenizer.all_special_ids)
    before = Predictor(first).word_probs(seen + [UNSEEN])
    with train_used_rows(first.model, ids) as swapped:
        assert swapped.weight.shape[0] == len(ids)
        assert first.model.state_dict()[WORD_KEY].shape[0] == len(ids)  # checkpoints shrink
        inside = Predictor(first).word_probs(seen + [UNSEEN])
        with torch.no_grad():
            swapped.weight.mul_(1.5)  # "training"
        changed = Predictor(first).word_probs(seen + [UNSEEN])
    after = Predictor(first).word_probs(seen + [UNSEEN])
    for x, y in zip(before, inside):
        assert (x == y).all()
    for x, y in zip(changed, after):
        assert (x == y).all()
    assert not all((x == y).all() for x, y in zip(before, after))
    embedding = first.model.encoder.get_input_embeddings()
    assert isinstance(embedding, torch.nn.Embedding)
    assert [n for n, _ in first.model.named_parameters()].count(WORD_KEY) == 1


def test_frozen_embeddings_are_left_alone(encoder_dir):
    bundle = build_bundle(encoder_dir, SCHEMA, ModelConfig(encoder=encoder_dir))
    embedding = bundle.model.encoder.get_input_embeddings()
    embedding.weight.requires_grad_(False)
    with train_used_rows(bundle.model, [0, 1, 2]) as swapped:
        assert swapped is None
        assert bundle.model.encoder.get_input_embeddings() is embedding
