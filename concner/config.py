"""All configuration and its defaults, in one place.

Frozen dataclasses per area; :func:`load_config` reads TOML (sections named like the
fields of :class:`Config`), then applies ``CONCNER_<SECTION>__<FIELD>`` environment
overrides (e.g. ``CONCNER_TRAINING__EPOCHS=3``). Validation raises :class:`ConfigError`
naming the offending key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from concner.errors import ConfigError

DEFAULT_ENCODER = "intfloat/multilingual-e5-small"
#: values of ``model.inference_precision`` (see concner/method/precision.py)
INFERENCE_PRECISIONS = ("fp32", "bf16", "int8")
#: values of ``services.promote_rule`` (see concner/jobs/promotion.py)
PROMOTE_RULES = ("mean", "every_language")
#: values of ``loss.lcl_on`` (what the label contrastive loss contrasts; concner/method/training.py)
LCL_INPUTS = ("projection", "logits")
#: values of ``loss.tcl_level`` (what the translation contrastive loss contrasts)
TCL_LEVELS = ("sentence", "entity")


@dataclass(frozen=True)
class DataConfig:
    source_lang: str = "en"
    target_langs: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ("PER", "ORG", "LOC")
    repair_iob: bool = False
    max_upload_mb: int = 50
    no_space_langs: tuple[str, ...] = ("zh", "ja", "th", "lo", "km", "my")
    #: `concner train`: use a random sample of this many source sentences (0 = all), drawn
    #: with `sample_seed` (separate from training.seed, so every seed sees the same sample)
    train_sample: int = 0
    sample_seed: int = 0
    #: `concner train`: evaluate on the first N sentences of each dev file (0 = all)
    dev_max_sentences: int = 0


@dataclass(frozen=True)
class ModelConfig:
    encoder: str = DEFAULT_ENCODER
    dropout: float = 0.1
    projection_dim: int = 128
    max_length: int = 128
    #: windows for prediction overlap by this many sub-words
    window_stride: int = 32
    freeze_embeddings: bool = False
    #: prediction: "viterbi" (best valid IOB2 path) or "argmax" (stray I- repaired to B-);
    #: viterbi gave +1.4 to +6.8 F1 on PAN-X dev en/es/de/nl/ru/zh (source-only en1k model)
    decoding: str = "viterbi"
    #: prediction numerics (concner/method/precision.py): "fp32" (on CPU with oneDNN-prepacked
    #: weights, same results up to float rounding); "bf16" (bfloat16 matrix products: fast
    #: on GPUs and on CPUs with avx512_bf16/AMX, slower than fp32 on other CPUs); "int8"
    #: (CPU only: int8 linear layers, for CPUs with VNNI but no bf16). 2,000 es dev
    #: sentences on 2 EPYC cores (benchmarks/results/speed.md): fp32 3.07x the transformers
    #: pipeline, bf16 4.73x with the same entities as fp32 on 99.3% of sentences, int8
    #: 3.97x with 94.7%
    inference_precision: str = "fp32"


@dataclass(frozen=True)
class LossConfig:
    use_translation: bool = True
    lambda_lcl: float = 0.5
    lambda_tcl: float = 0.5
    temperature_lcl: float = 0.1
    temperature_tcl: float = 0.05
    #: cap on O anchors in LCL, as a multiple of the entity tokens in the batch
    lcl_o_anchor_ratio: float = 1.0
    #: what LCL contrasts (first sub-words; O tokens as in either case: capped anchors):
    #: "projection" = the token representations through the projection head, at
    #: temperature_lcl; "logits" = the classifier's per-token logits, at
    #: temperature_lcl_logits (GKLMIP's cross-lingual ABSA code; issue 19 variant (a))
    lcl_on: str = "projection"
    temperature_lcl_logits: float = 0.9
    #: what TCL contrasts (at temperature_tcl): "sentence" = each sentence's mean of the
    #: last hidden states over all its sub-words (special tokens included) against the other
    #: sentences of the batch; "entity" = each source entity's mean first-sub-word state
    #: against its projected span in the translation, the batch's other entities as
    #: negatives (a pair whose entities per type differ in number is skipped and counted in
    #: the history; issue 19 variant (b))
    tcl_level: str = "sentence"
    #: stage 2 (distillation on unlabelled target text) is part of the method: on by default
    #: (+1.0 F1 on the translated mean over ConCNER without it, 3 seeds,
    #: benchmarks/results/quality.md);
    #: skipped with a warning while a project has no unlabelled target sentences
    kd: bool = True
    kd_loss: str = "kl"  # "kl" or "mse"
    kd_temperature: float = 1.0
    lambda_src: float = 0.5


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 13
    epochs: int = 5
    kd_epochs: int = 2
    #: distil on at most this many unlabelled target sentences (a fixed-seed sample; 0 = all):
    #: a project's pool can hold tens of thousands, and a retrain must stay in minutes on a CPU
    kd_max_sentences: int = 2000
    batch_size: int = 16
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    num_threads: int = 0  # 0 = torch default for the machine
    eval_every_epoch: bool = True
    device: str = "auto"  # "auto", "cpu", "cuda"
    bf16: bool = True  # autocast on CUDA only
    #: dev languages whose mean F1 picks the best epoch (empty = all dev languages)
    select_langs: tuple[str, ...] = ()
    eval_batch_size: int = 64
    #: worker retrains: update the active model incrementally when few labels are new
    #: (warm start, new labels + a replay sample, ``incremental_epochs``, no distillation;
    #: see concner/jobs/incremental.py); false = every retrain trains from scratch
    incremental: bool = True
    #: more new (or changed) labelled sentences than this since the active model -> full retrain
    incremental_max_new_labels: int = 200
    incremental_epochs: int = 2
    #: old labelled sentences replayed with the new ones, sampled with the run seed
    replay_size: int = 200
    #: the stored translations of the new and replayed sentences join an incremental update
    #: (TCL and translated labels, as in stage 1; no MT is run during the update)
    incremental_translations: bool = True
    #: after this many incremental updates in a row, the next retrain is a full one
    full_retrain_every: int = 5
    #: with a checkpoint folder (the worker's retrains), save the training state after every
    #: epoch so a killed run resumes at the next epoch (concner/method/checkpoint.py); false = none
    checkpoint_every_epoch: bool = True


@dataclass(frozen=True)
class ActiveConfig:
    #: which pool sentences people see first (concner/active/strategies.py); diversity
    #: (clustered batches of the most uncertain by MNLP) had the largest area under the
    #: F1-vs-labels curve on both sides in benchmarks/results/active_learning.md
    strategy: str = "diversity"
    batch_size: int = 20
    mc_passes: int = 8
    diversity_candidates: int = 5  # candidates considered = factor x batch size
    diversity_base: str = "mnlp"  # uncertainty strategy that ranks the diversity candidates
    #: the diversity strategy orders this many pool sentences batch by batch (a k-means per
    #: batch); the rest follow by the base strategy's score
    diversity_order_limit: int = 1000


@dataclass(frozen=True)
class ServicesConfig:
    database_url: str = "sqlite:///concner-data/concner.db"
    queue_path: str = "concner-data/queue.db"
    redis_url: str = ""
    checkpoints: str = "concner-data/models"
    argilla_url: str = "http://127.0.0.1:6900"
    argilla_api_key: str = ""
    argilla_workspace: str = "argilla"
    #: the local stack (`concner argilla up`): data folder, server virtualenv (cached), ports
    argilla_data_dir: str = "concner-data/argilla"
    argilla_venv: str = "~/.cache/concner/argilla-venv"
    argilla_redis_port: int = 6391
    argilla_search_port: int = 9201
    argilla_start_timeout_s: float = 180.0
    #: submissions a record needs before it counts as done (Argilla task distribution)
    argilla_min_submitted: int = 1
    argilla_batch_size: int = 200
    #: the push policy: each sync keeps the next this-many sentences to ask (in the
    #: active-learning order) in each Argilla dataset, topping up as they get answered;
    #: the Review page's send button adds a batch on top (0 = the whole pool). 100 is
    #: about one annotator's session (20-40 s a sentence) and five active-learning
    #: batches, so annotators do not run dry between syncs, while a retrain's new order
    #: reaches the front of the queue after a few answers instead of after thousands
    argilla_queue_size: int = 100
    #: hours between syncs that read every record of a dataset (the others read only what
    #: changed); 0 = read everything on every sync
    argilla_full_sync_hours: float = 24.0
    #: retries (exponential backoff from argilla_backoff_s) before ServiceUnavailable
    argilla_retries: int = 4
    argilla_backoff_s: float = 1.0
    retrain_min_new_labels: int = 50
    #: automatic retraining waits until a project has this many labelled source sentences
    #: (and target text, translations, a dev set: concner/jobs/readiness.py); on-demand retrains
    #: do not wait
    auto_retrain_min_source_labels: int = 100
    #: when a new model version replaces the active one (concner/jobs/promotion.py; shown on the
    #: Models page): "mean" = its mean target dev F1 is at most promote_tolerance F1 points
    #: below the active version's; "every_language" = that, and no target language's dev
    #: F1 drops by more than promote_tolerance points
    promote_rule: str = "mean"
    #: F1 points a new version may lose against the active one and still be promoted
    promote_tolerance: float = 0.5
    keep_versions: int = 3
    #: worker: seconds between heartbeats (worker row and retrain lock)
    heartbeat_seconds: float = 5.0
    #: a worker whose heartbeat is older than this is dead (concner.jobs.liveness, for the CLI
    #: and the app), and so is the retrain lock it holds
    lock_stale_seconds: float = 60.0
    #: Huey consumer threads (a retrain occupies one; predictions can use another)
    worker_threads: int = 2
    #: modules imported by the worker that register sync hooks (concner.jobs.queue.register_sync_hook)
    sync_modules: tuple[str, ...] = ()
    #: minutes between periodic syncs of every project
    sync_every_minutes: int = 5
    #: `concner up`'s own files: the supervisor state (supervisor.json) and the logs of the
    #: worker and the app (logs/)
    run_dir: str = "concner-data/run"
    #: `concner up` restarts a part that died after supervisor_backoff_s, doubling each time
    #: it dies again soon, up to supervisor_backoff_max_s; a part that died more than
    #: supervisor_max_restarts times within supervisor_window_s is given up (the rest stay up)
    supervisor_backoff_s: float = 1.0
    supervisor_backoff_max_s: float = 30.0
    supervisor_max_restarts: int = 5
    supervisor_window_s: float = 600.0


@dataclass(frozen=True)
class TranslationConfig:
    """MT backends and label projection (see concner/translation/)."""

    cache_path: str = "concner-data/translation-cache.sqlite"
    apertium_batch_size: int = 500  # sentences per apertium process call
    apertium_timeout_s: float = 600.0
    #: entity types Apertium must not translate (it turns "Smith" into "Herrero")
    apertium_protect_types: tuple[str, ...] = ("PER",)
    dictionary_dir: str = "/usr/share/dictd"
    #: share of non-entity words the dictionary backend replaces (when it knows them)
    dictionary_share: float = 1.0
    dictionary_seed: int = 13
    hf_batch_size: int = 16
    hf_max_new_tokens: int = 256
    hf_num_beams: int = 1
    hf_device: str = "auto"  # "auto", "cpu", "cuda"


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)
    services: ServicesConfig = field(default_factory=ServicesConfig)
    translation: TranslationConfig = field(default_factory=TranslationConfig)
    #: free-form paths for the ``concner train`` command (train/translation/dev files)
    paths: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(section: str, name: str, current: Any, value: Any) -> Any:
    key = f"{section}.{name}"
    if isinstance(current, bool):
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if isinstance(current, int):
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a whole number, got {value!r}") from None
    if isinstance(current, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def _build_section(cls, section: str, values: Mapping[str, Any]):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [{section}]: {', '.join(unknown)}; known: {', '.join(known)}"
        )
    default = cls()
    kwargs = {n: _coerce(section, n, getattr(default, n), v) for n, v in values.items()}
    return cls(**kwargs)


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "training": TrainingConfig,
    "active": ActiveConfig,
    "services": ServicesConfig,
    "translation": TranslationConfig,
}


def config_from_dict(data: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> Config:
    """Build and validate a :class:`Config` from nested dicts plus ``CONCNER_*`` overrides."""
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    unknown = sorted(set(data) - set(_SECTIONS) - {"paths"})
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(_SECTIONS)}, paths")
    for key, value in (os.environ if env is None else env).items():
        if not key.startswith("CONCNER_") or "__" not in key:
            continue
        section, _, name = key[len("CONCNER_"):].lower().partition("__")
        if section in _SECTIONS:
            data.setdefault(section, {})[name] = value
    built = {name: _build_section(cls, name, data.get(name, {})) for name, cls in _SECTIONS.items()}
    config = Config(**built, paths=dict(data.get("paths", {})))
    validate(config)
    return config


def load_config(path: str | os.PathLike | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read a TOML file (or only defaults and environment when ``path`` is None)."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return config_from_dict(data, env=env)


def validate(config: Config) -> None:
    """Range checks; raises :class:`ConfigError` naming the key and the allowed range."""

    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{key} {msg}")

    m, lo, t, a, s = config.model, config.loss, config.training, config.active, config.services
    need(0.0 <= m.dropout < 1.0, "model.dropout", "must be in [0, 1)")
    need(m.max_length >= 8, "model.max_length", "must be at least 8")
    need(0 <= m.window_stride < m.max_length // 2, "model.window_stride", "must be in [0, max_length/2)")
    need(m.projection_dim > 0, "model.projection_dim", "must be positive")
    need(m.decoding in ("argmax", "viterbi"), "model.decoding", "must be 'argmax' or 'viterbi'")
    need(m.inference_precision in INFERENCE_PRECISIONS, "model.inference_precision",
         f"must be one of {', '.join(INFERENCE_PRECISIONS)}, got {m.inference_precision!r}")
    need(lo.lambda_lcl >= 0 and lo.lambda_tcl >= 0 and lo.lambda_src >= 0, "loss.lambda_*", "must be >= 0")
    need(lo.temperature_lcl > 0 and lo.temperature_tcl > 0 and lo.kd_temperature > 0
         and lo.temperature_lcl_logits > 0, "loss.temperature_*", "must be > 0")
    need(lo.lcl_on in LCL_INPUTS, "loss.lcl_on",
         f"must be one of {', '.join(LCL_INPUTS)}, got {lo.lcl_on!r}")
    need(lo.tcl_level in TCL_LEVELS, "loss.tcl_level",
         f"must be one of {', '.join(TCL_LEVELS)}, got {lo.tcl_level!r}")
    need(lo.kd_loss in ("kl", "mse"), "loss.kd_loss", "must be 'kl' or 'mse'")
    need(lo.lcl_o_anchor_ratio >= 0, "loss.lcl_o_anchor_ratio", "must be >= 0")
    need(t.epochs >= 0 and t.kd_epochs >= 0, "training.epochs", "must be >= 0")
    need(t.kd_max_sentences >= 0, "training.kd_max_sentences", "must be >= 0 (0 = all)")
    need(t.batch_size >= 1, "training.batch_size", "must be >= 1")
    need(0 < t.learning_rate < 1, "training.learning_rate", "must be in (0, 1)")
    need(0 <= t.warmup_ratio < 1, "training.warmup_ratio", "must be in [0, 1)")
    need(t.device in ("auto", "cpu", "cuda"), "training.device", "must be auto, cpu or cuda")
    need(t.num_threads >= 0, "training.num_threads", "must be >= 0")
    need(t.eval_batch_size >= 1, "training.eval_batch_size", "must be >= 1")
    need(t.incremental_max_new_labels >= 1, "training.incremental_max_new_labels",
         "must be >= 1 (set training.incremental = false to always retrain from scratch)")
    need(t.incremental_epochs >= 1, "training.incremental_epochs", "must be >= 1")
    need(t.replay_size >= 0, "training.replay_size", "must be >= 0 (0 = no replay)")
    need(t.full_retrain_every >= 1, "training.full_retrain_every",
         "must be >= 1 (incremental updates in a row before a full retrain)")
    need(config.data.train_sample >= 0 and config.data.dev_max_sentences >= 0,
         "data.train_sample/dev_max_sentences", "must be >= 0 (0 = all)")
    need(a.batch_size >= 1 and a.mc_passes >= 1, "active.batch_size/mc_passes", "must be >= 1")
    need(a.diversity_order_limit >= 0, "active.diversity_order_limit", "must be >= 0")
    need(s.retrain_min_new_labels >= 1, "services.retrain_min_new_labels", "must be >= 1")
    need(s.promote_rule in PROMOTE_RULES, "services.promote_rule",
         f"must be one of {', '.join(PROMOTE_RULES)}, got {s.promote_rule!r}")
    need(0 <= s.promote_tolerance <= 100, "services.promote_tolerance",
         "must be in [0, 100] (F1 points)")
    need(s.auto_retrain_min_source_labels >= 1, "services.auto_retrain_min_source_labels",
         "must be >= 1")
    need(s.keep_versions >= 1, "services.keep_versions", "must be >= 1")
    need(s.heartbeat_seconds > 0, "services.heartbeat_seconds", "must be > 0")
    need(s.lock_stale_seconds > 2 * s.heartbeat_seconds, "services.lock_stale_seconds",
         "must be more than twice services.heartbeat_seconds")
    need(s.worker_threads >= 1, "services.worker_threads", "must be >= 1")
    need(1 <= s.sync_every_minutes <= 59, "services.sync_every_minutes", "must be in [1, 59]")
    need(0 < s.supervisor_backoff_s <= s.supervisor_backoff_max_s,
         "services.supervisor_backoff_s", "must be > 0 and <= services.supervisor_backoff_max_s")
    need(s.supervisor_max_restarts >= 0, "services.supervisor_max_restarts", "must be >= 0")
    need(s.supervisor_window_s > 0, "services.supervisor_window_s", "must be > 0")
    need(s.argilla_min_submitted >= 1 and s.argilla_batch_size >= 1,
         "services.argilla_min_submitted/argilla_batch_size", "must be >= 1")
    need(s.argilla_full_sync_hours >= 0, "services.argilla_full_sync_hours", "must be >= 0")
    need(s.argilla_retries >= 0 and s.argilla_backoff_s >= 0 and s.argilla_queue_size >= 0,
         "services.argilla_retries/backoff_s/queue_size", "must be >= 0")
    need(len(config.data.entity_types) >= 1, "data.entity_types", "needs at least one type")
    tr = config.translation
    need(0.0 <= tr.dictionary_share <= 1.0, "translation.dictionary_share", "must be in [0, 1]")
    need(tr.apertium_batch_size >= 1 and tr.hf_batch_size >= 1, "translation.*_batch_size",
         "must be >= 1")
    need(tr.apertium_timeout_s > 0, "translation.apertium_timeout_s", "must be > 0")
    need(tr.hf_max_new_tokens >= 1 and tr.hf_num_beams >= 1, "translation.hf_*",
         "must be >= 1")
    need(tr.hf_device in ("auto", "cpu", "cuda"), "translation.hf_device",
         "must be auto, cpu or cuda")
