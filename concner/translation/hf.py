"""Neural MT with any ``transformers`` seq2seq model, with bracket entity markers.

``HFTranslator("Helsinki-NLP/opus-mt-en-es")`` (hub id or local folder). Language codes
follow the model family:

- Marian (``opus-mt-en-XX``): one target, nothing to add; multi-target Marian models
  (``opus-mt-en-ROMANCE``) need a ``>>xx<<`` prefix token, added when the tokenizer's
  vocabulary has ``>>es<<`` (or the 639-3 form ``>>spa<<``);
- NLLB (``facebook/nllb-200-*``): ``src_lang`` and the forced first token are FLORES-200
  codes (``eng_Latn`` -> ``spa_Latn``);
- M2M100 (``facebook/m2m100_*``): ``src_lang = "en"`` and the forced first token is the
  ``__es__`` language token.

Generation is batched (``translation.hf_batch_size`` texts), greedy by default
(``hf_num_beams``), on CUDA when available and ``hf_device`` is ``auto``.
"""

from __future__ import annotations

from pathlib import Path

from concner.config import TranslationConfig
from concner.errors import ConfigError, ModelError
from concner.translation.cache import TranslationCache
from concner.translation.engine import MarkerTranslator
from concner.translation.langcodes import FLORES, iso3


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("translation.hf_device is 'cuda' but no CUDA device is available")
    return name


class HFTranslator(MarkerTranslator):
    """Seq2seq translation through ``model.generate``; see the module docstring."""

    backend = "hf"
    style = "bracket"

    def __init__(self, model_name_or_path: str, *, source_lang: str = "en",
                 config: TranslationConfig | None = None, cache: TranslationCache | None = None,
                 model=None, tokenizer=None):
        """``model``/``tokenizer`` may be passed ready-made (then nothing is loaded)."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        super().__init__(cache=cache)
        config = config or TranslationConfig()
        self.model = str(model_name_or_path)
        self.source_lang = source_lang
        self.batch_size = config.hf_batch_size
        self.max_new_tokens = config.hf_max_new_tokens
        self.num_beams = config.hf_num_beams
        self.device = _device(config.hf_device)
        try:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.model)
            self.seq2seq = model or AutoModelForSeq2SeqLM.from_pretrained(self.model)
        except (OSError, ValueError) as exc:
            where = "folder" if Path(self.model).exists() else "hub id"
            raise ModelError(f"cannot load the seq2seq model {self.model!r} ({where}): {exc}; "
                             "give a Marian/NLLB/M2M100 hub id or a local model folder") from None
        self.seq2seq.to(self.device).eval()
        self.family = self._family()

    def _family(self) -> str:
        kind = getattr(self.seq2seq.config, "model_type", "")
        if type(self.tokenizer).__name__.startswith("Nllb"):
            return "nllb"  # NLLB dense (model type m2m_100) and NLLB-MoE
        return "m2m100" if kind == "m2m_100" else kind

    def cache_model(self, target_lang: str) -> str:
        return f"{super().cache_model(target_lang)}|beams={self.num_beams}"

    def generation_setup(self, target_lang: str) -> tuple[str, dict]:
        """``(prefix, generate kwargs)`` for ``target_lang`` under the model's convention."""
        if self.family == "nllb":
            for lang in (self.source_lang, target_lang):
                if lang not in FLORES:
                    raise ConfigError(f"no FLORES-200 code known for {lang!r}")
            self.tokenizer.src_lang = FLORES[self.source_lang]
            token_id = self.tokenizer.convert_tokens_to_ids(FLORES[target_lang])
            return "", {"forced_bos_token_id": token_id}
        if self.family == "m2m100":
            self.tokenizer.src_lang = self.source_lang
            return "", {"forced_bos_token_id": self.tokenizer.get_lang_id(target_lang)}
        if self.family == "marian":
            vocab = self.tokenizer.get_vocab()
            tags = [f">>{target_lang}<<", f">>{iso3(target_lang)}<<"]
            if any(t.startswith(">>") and t.endswith("<<") for t in vocab):
                for tag in tags:
                    if tag in vocab:
                        return tag + " ", {}
                raise ConfigError(f"the multi-target model {self.model} has no {tags[0]} token; "
                                  "it cannot translate into " + target_lang)
        return "", {}

    def translate_texts(self, texts: list[str], target_lang: str) -> list[str | None]:
        """Translate a batch. Shapes: ``input_ids`` ``(len(texts), max_source_len)`` ->
        generated ids ``(len(texts), <= max_new_tokens + 1)``."""
        import torch

        prefix, kwargs = self.generation_setup(target_lang)
        batch = self.tokenizer([prefix + t for t in texts], return_tensors="pt", padding=True,
                               truncation=True)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            generated = self.seq2seq.generate(**batch, max_new_tokens=self.max_new_tokens,
                                              num_beams=self.num_beams, **kwargs)
        return self.tokenizer.batch_decode(generated, skip_special_tokens=True)
