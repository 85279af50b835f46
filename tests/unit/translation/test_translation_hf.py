"""The hf backend's code path with a tiny randomly-initialised Marian model built here
(its output is noise: the test checks plumbing, batching, caching and failure handling)."""

from __future__ import annotations

import io
import json

import pytest
import torch

from concner.config import TranslationConfig
from concner.errors import ConfigError, ModelError
from concner.sentence import Sentence
from concner.translation.base import Status
from concner.translation.cache import TranslationCache
from concner.translation.hf import HFTranslator

torch.set_num_threads(1)

TEXT = ["He lives in New York City .", "Anna met Bob in Paris .", "[ The house ] is big .",
        "Sie wohnt in Berlin .", "hola casa grande ."]


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    import sentencepiece as spm
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder = tmp_path_factory.mktemp("tiny-marian")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXT * 20), model_writer=model,
                                   vocab_size=60, model_type="unigram",
                                   user_defined_symbols=["[", "]", ">>es<<", ">>de<<"], hard_vocab_limit=False)
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes(model.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = ["</s>", "<unk>", "<pad>"] + [processor.id_to_piece(i)
                                           for i in range(processor.get_piece_size())]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"),
                                str(folder / "vocab.json"))
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2,
                          encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                          pad_token_id=vocab["<pad>"], eos_token_id=vocab["</s>"],
                          decoder_start_token_id=vocab["<pad>"], forced_eos_token_id=vocab["</s>"])
    MarianMTModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sentences():
    return [Sentence.from_tokens("h1", "en", ["He", "lives", "in", "New", "York", "City", "."],
                                 ["O", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"]),
            Sentence.from_tokens("h2", "en", ["Anna", "met", "Bob", "in", "Paris", "."],
                                 ["B-PER", "O", "B-PER", "O", "B-LOC", "O"]),
            Sentence.from_tokens("h3", "en", ["The", "house", "is", "big", "."],
                                 ["O", "O", "O", "O", "O"])]


def test_tiny_marian_translates_in_batches_with_cache(marian_dir):
    config = TranslationConfig(hf_batch_size=2, hf_max_new_tokens=8, hf_device="cpu")
    cache = TranslationCache(":memory:")
    tr = HFTranslator(str(marian_dir), config=config, cache=cache)
    assert tr.family == "marian"
    batches = []
    original = tr.translate_texts

    def counting(texts, target):
        batches.append(len(texts))
        return original(texts, target)

    tr.translate_texts = counting
    progress = []
    pairs = tr.translate(sentences(), "es", progress=lambda d, t: progress.append(d))
    assert batches == [2, 1]
    assert progress[-1] == 3
    assert [p.source.id for p in pairs] == ["h1", "h2", "h3"]
    for pair in pairs:
        assert pair.status in set(Status) and pair.target_lang == "es"
        if pair.status is Status.FAILED:
            assert pair.reason and pair.translated is None
        else:
            assert pair.translated.lang == "es"
            assert len(pair.translated.tags) == len(pair.translated.tokens)
    # the sentence without entities cannot break its projection (no markers needed)
    assert pairs[2].status is not Status.FAILED or "empty" in pairs[2].reason
    again = tr.translate(sentences(), "es")
    assert batches == [2, 1], "cached texts must not reach the model"
    assert [p.status for p in again] == [p.status for p in pairs]


def test_language_code_conventions(marian_dir):
    tr = HFTranslator(str(marian_dir), config=TranslationConfig(hf_device="cpu"))
    # a multi-target Marian vocabulary (>>es<<, >>de<<): the target token is prefixed
    assert tr.generation_setup("es") == (">>es<< ", {})
    assert tr.generation_setup("de")[0] == ">>de<< "
    with pytest.raises(ConfigError, match="fr"):
        tr.generation_setup("fr")
    tr.family = "nllb"
    with pytest.raises(ConfigError, match="FLORES"):
        tr.generation_setup("xx")


def test_unloadable_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="seq2seq model"):
        HFTranslator(str(tmp_path), config=TranslationConfig(hf_device="cpu"))
