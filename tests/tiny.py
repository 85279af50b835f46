"""Tiny offline models for tests: a 2-layer BERT encoder with a fast WordPiece tokenizer.

Nothing here touches the network. ``make_tiny_encoder_dir`` writes a folder that
``AutoModel.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load like any hub model;
``make_tiny_bundle`` turns it into a :class:`concner.method.model.NerBundle` with a fixed seed.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

#: Words that are in the vocabulary whole, so common test sentences are short in pieces.
DEFAULT_WORDS = [
    "the", "of", "in", "and", "is", "was", "to", "a", "at", "from", "visited", "lives",
    "works", "for", "John", "Smith", "Mary", "Paris", "London", "Berlin", "Google",
    "Microsoft", "United", "Nations", "New", "York", "city", "company", "person",
]

TINY_HIDDEN = 32
TINY_LAYERS = 2
TINY_HEADS = 2
TINY_INTERMEDIATE = 64
TINY_MAX_POSITIONS = 256


def tiny_vocabulary(vocab_words: Iterable[str] | None = None) -> list[str]:
    """Specials, single characters (ASCII letters, digits, punctuation and every character
    of ``vocab_words``), their ``##`` continuations, then the whole words. No duplicates."""
    words = list(DEFAULT_WORDS) + list(vocab_words or [])
    chars = list(string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation)
    for word in words:
        chars.extend(word)
    vocab: list[str] = []
    seen: set[str] = set()
    for piece in SPECIAL_TOKENS + chars + ["##" + c for c in chars] + words:
        if piece not in seen and piece.strip():
            seen.add(piece)
            vocab.append(piece)
    return vocab


def make_tiny_tokenizer(vocab_words: Iterable[str] | None = None):
    """A fast WordPiece tokenizer (``PreTrainedTokenizerFast``) over :func:`tiny_vocabulary`.

    BERT normalisation without lower-casing or accent stripping, BERT pre-tokenisation
    (CJK characters split apart), ``[CLS] ... [SEP]`` around each sequence. A word made of
    unknown characters becomes ``[UNK]``.
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    vocab = {piece: i for i, piece in enumerate(tiny_vocabulary(vocab_words))}
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=TINY_MAX_POSITIONS,
    )


def make_tiny_encoder_dir(path: str | Path, vocab_words: Iterable[str] | None = None,
                          *, seed: int = 0) -> Path:
    """Write a tiny random ``BertModel`` (hidden 32, 2 layers, 2 heads, FFN 64) and its fast
    tokenizer to ``path`` (created if needed); returns ``path`` as a :class:`Path`."""
    import torch
    from transformers import BertConfig, BertModel

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer(vocab_words)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        intermediate_size=TINY_INTERMEDIATE,
        max_position_embeddings=TINY_MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = BertModel(config)
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_tiny_bundle(tmp_path: str | Path, schema=None, seed: int = 0, *,
                     vocab_words: Iterable[str] | None = None, config=None):
    """A :class:`concner.method.model.NerBundle` over a tiny encoder written under ``tmp_path``.

    ``schema`` defaults to ``LabelSchema(["PER", "ORG", "LOC"])``, ``config`` to a default
    :class:`concner.config.ModelConfig` with ``encoder`` set to the tiny folder. The heads
    are initialised under ``seed`` (the global torch RNG is left as it was).
    """
    import dataclasses

    import torch

    from concner.config import ModelConfig
    from concner.labels import LabelSchema
    from concner.method.model import build_bundle

    schema = LabelSchema(["PER", "ORG", "LOC"]) if schema is None else schema
    encoder_dir = make_tiny_encoder_dir(Path(tmp_path) / f"tiny-encoder-{seed}", vocab_words,
                                        seed=seed)
    config = dataclasses.replace(config or ModelConfig(), encoder=str(encoder_dir))
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return build_bundle(str(encoder_dir), schema, config)
    finally:
        torch.random.set_rng_state(state)
