"""All configuration and its defaults, in one place.

Frozen dataclasses per area; each setting is declared once, as a field made with
:func:`concner.settings.setting` (its help, allowed range or choices, and whether the app's
Training form shows it live in the field's metadata). :func:`load_config` reads TOML
(sections named like the fields of :class:`Config`), then applies
``CONCNER_<SECTION>__<FIELD>`` environment overrides (e.g. ``CONCNER_TRAINING__EPOCHS=3``).
Validation raises :class:`ConfigError` naming the offending key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concner.errors import ConfigError
from concner.settings import build_section, check_section, setting

DEFAULT_ENCODER = "intfloat/multilingual-e5-small"
#: values of ``training.embedding_rows`` (see concner/method/embedding_rows.py)
EMBEDDING_ROWS = ("used", "all")
#: values of ``model.inference_precision`` (see concner/method/precision.py)
INFERENCE_PRECISIONS = ("fp32", "bf16", "int8")
#: values of ``services.promote_rule`` (see concner/jobs/promotion.py)
PROMOTE_RULES = ("mean", "every_language")
#: values of ``loss.lcl_on`` (what the label contrastive loss contrasts; concner/method/training.py)
LCL_INPUTS = ("projection", "logits")
#: values of ``loss.tcl_level`` (what the translation contrastive loss contrasts)
TCL_LEVELS = ("sentence", "entity")
#: values of ``model.decoding``
DECODINGS = ("argmax", "viterbi")
#: values of ``loss.kd_loss``
KD_LOSSES = ("kl", "mse")
#: values of ``training.device`` and ``translation.hf_device``
DEVICES = ("auto", "cpu", "cuda")


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
    train_sample: int = setting(0, ge=0, help="0 = all")
    sample_seed: int = 0
    #: `concner train`: evaluate on the first N sentences of each dev file (0 = all)
    dev_max_sentences: int = setting(0, ge=0, help="0 = all")


@dataclass(frozen=True)
class ModelConfig:
    encoder: str = DEFAULT_ENCODER
    dropout: float = setting(0.1, ge=0.0, lt=1.0)
    projection_dim: int = setting(128, gt=0)
    max_length: int = setting(128, ge=8)
    #: windows for prediction overlap by this many sub-words
    window_stride: int = setting(32, ge=0, help="and less than max_length/2")
    freeze_embeddings: bool = False
    #: prediction: "viterbi" (best valid IOB2 path) or "argmax" (stray I- repaired to B-);
    #: viterbi gave +1.4 to +6.8 F1 on PAN-X dev en/es/de/nl/ru/zh (source-only en1k model)
    decoding: str = setting("viterbi", choices=DECODINGS)
    #: prediction numerics (concner/method/precision.py): "fp32" (on CPU with oneDNN-prepacked
    #: weights, same results up to float rounding); "bf16" (bfloat16 matrix products: fast
    #: on GPUs and on CPUs with avx512_bf16/AMX, slower than fp32 on other CPUs); "int8"
    #: (CPU only: int8 linear layers, for CPUs with VNNI but no bf16). 2,000 es dev
    #: sentences on 2 EPYC cores (benchmarks/results/speed.md): fp32 3.07x the transformers
    #: pipeline, bf16 4.73x with the same entities as fp32 on 99.3% of sentences, int8
    #: 3.97x with 94.7%
    inference_precision: str = setting("fp32", choices=INFERENCE_PRECISIONS)


@dataclass(frozen=True)
class LossConfig:
    use_translation: bool = setting(
        True, form="use translations (translation contrastive loss)")
    lambda_lcl: float = setting(0.5, ge=0, form="λ label contrastive")
    lambda_tcl: float = setting(0.5, ge=0, form="λ translation contrastive")
    temperature_lcl: float = setting(0.1, gt=0, form="temperature (label contrastive)")
    temperature_tcl: float = setting(0.05, gt=0, form="temperature (translation contrastive)")
    #: cap on O anchors in LCL, as a multiple of the entity tokens in the batch
    lcl_o_anchor_ratio: float = setting(1.0, ge=0)
    #: what LCL contrasts (first sub-words; O tokens as in either case: capped anchors):
    #: "projection" = the token representations through the projection head, at
    #: temperature_lcl; "logits" = the classifier's per-token logits, at
    #: temperature_lcl_logits (GKLMIP's cross-lingual ABSA code; issue 19 variant (a))
    lcl_on: str = setting("projection", choices=LCL_INPUTS)
    temperature_lcl_logits: float = setting(0.9, gt=0)
    #: what TCL contrasts (at temperature_tcl): "sentence" = each sentence's mean of the
    #: last hidden states over all its sub-words (special tokens included) against the other
    #: sentences of the batch; "entity" = each source entity's mean first-sub-word state
    #: against its projected span in the translation, the batch's other entities as
    #: negatives (a pair whose entities per type differ in number is skipped and counted in
    #: the history; issue 19 variant (b))
    tcl_level: str = setting("sentence", choices=TCL_LEVELS)
    #: stage 2 (distillation on unlabelled target text) is part of the method: on by default
    #: (+1.0 F1 on the translated mean over ConCNER without it, 3 seeds,
    #: benchmarks/results/quality.md);
    #: skipped with a warning while a project has no unlabelled target sentences
    kd: bool = setting(True, form="knowledge distillation (stage 2)")
    kd_loss: str = setting("kl", choices=KD_LOSSES)
    #: 1, measured (issue 19 (d), benchmarks/results/source_budget.md, Part 2): T = 2 over
    #: ConCNER + KD at 100 English labels, same seeds, es/de/nl mean: +0.4, +0.2, +0.3 (3
    #: seeds, fp32), against an 8.0-point seed spread; not worth a changed default
    kd_temperature: float = setting(1.0, gt=0)
    lambda_src: float = setting(0.5, ge=0)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = setting(5, ge=0, form="epochs (stage 1)")
    kd_epochs: int = setting(2, ge=0, form="epochs (distillation)")
    #: distil on at most this many unlabelled target sentences (a fixed-seed sample; 0 = all):
    #: a project's pool can hold tens of thousands, and a retrain must stay in minutes on a CPU
    kd_max_sentences: int = setting(2000, ge=0, help="0 = all")
    batch_size: int = setting(16, ge=1, form="batch size")
    learning_rate: float = setting(1e-4, gt=0, lt=1, form="learning rate (encoder)")
    head_learning_rate: float = 1e-3
    #: (declared after the form's other training fields: the form shows them in this order)
    seed: int = setting(13, form="seed")
    weight_decay: float = 0.01
    warmup_ratio: float = setting(0.1, ge=0, lt=1)
    max_grad_norm: float = 1.0
    num_threads: int = setting(0, ge=0, help="0 = torch default for the machine")
    eval_every_epoch: bool = True
    #: stop a stage once its dev score has not improved for this many epochs (0 = never;
    #: needs dev sentences and eval_every_epoch); the best epoch is kept either way. Off:
    #: replayed on the source-budget sweep's 120 training histories (issue 20,
    #: benchmarks/results/early_stop.md), patience 1 saves 1-7% of stage-1 epochs at 250
    #: and 500 labels, and every stop it makes comes before the best epoch (up to 2.8 F1
    #: lost); at 100 labels it stops at epoch 2 while the model still tags all O; KD's 2
    #: epochs never stop. Dev F1 is still rising at the default 5 epochs
    early_stop_patience: int = setting(0, ge=0, help="0 = train every epoch")
    device: str = setting("auto", choices=DEVICES)
    bf16: bool = setting(True, help="autocast on CUDA only")
    #: training forward passes in bfloat16 autocast on a CPU with native bf16 (AMX or
    #: avx512_bf16; ignored on other CPUs, where bf16 is slower than fp32). On since issue
    #: 20: on a 2-core Xeon with AMX a full retrain took 0.67x the CPU seconds of float32
    #: (394 vs 585 s, seeds 13-15) for es dev F1 70.26 +- 0.83 against 70.51 +- 0.30, a
    #: difference inside float32's seed spread (benchmarks/results/speed.md)
    cpu_bf16: bool = setting(True, help="CPUs with AMX or avx512_bf16 only")
    #: dev languages whose mean F1 picks the best epoch (empty = all dev languages)
    select_langs: tuple[str, ...] = ()
    eval_batch_size: int = setting(64, ge=1)
    #: "used": while a stage trains, only the word-embedding rows of the pieces its text uses
    #: are parameters (concner/method/embedding_rows.py; same result up to rounding, except
    #: that unused rows skip weight decay); "all": the whole [vocab, hidden] matrix. Measured
    #: (benchmarks/results/speed.md, full retrain, seed 13, side by side): 0.80x the time of
    #: "all", the same es dev F1 (0.7027), peak RSS 5.8 -> 4.4 GB; the optimizer's share of
    #: stage 1 fell from 62 s to 17 s
    embedding_rows: str = setting("used", choices=EMBEDDING_ROWS)
    #: worker retrains: update the active model incrementally when few labels are new
    #: (warm start, new labels + a replay sample, ``incremental_epochs``, no distillation;
    #: see concner/jobs/incremental.py); false = every retrain trains from scratch
    incremental: bool = True
    #: more new (or changed) labelled sentences than this since the active model -> full retrain
    incremental_max_new_labels: int = setting(
        200, ge=1, help="set training.incremental = false to always retrain from scratch")
    incremental_epochs: int = setting(2, ge=1)
    #: old labelled sentences replayed with the new ones, sampled with the run seed
    replay_size: int = setting(200, ge=0, help="0 = no replay")
    #: the stored translations of the new and replayed sentences join an incremental update
    #: (TCL and translated labels, as in stage 1; no MT is run during the update)
    incremental_translations: bool = True
    #: after this many incremental updates in a row, the next retrain is a full one
    full_retrain_every: int = setting(
        5, ge=1, help="incremental updates in a row before a full retrain")
    #: with a checkpoint folder (the worker's retrains), save the training state after every
    #: epoch so a killed run resumes at the next epoch (concner/method/checkpoint.py); false = none
    checkpoint_every_epoch: bool = True


@dataclass(frozen=True)
class ActiveConfig:
    #: which pool sentences people see first (concner/active/strategies.py); diversity
    #: (clustered batches of the most uncertain by MNLP) had the largest area under the
    #: F1-vs-labels curve on both sides in benchmarks/results/active_learning.md
    strategy: str = "diversity"
    batch_size: int = setting(20, ge=1)
    mc_passes: int = setting(8, ge=1)
    diversity_candidates: int = 5  # candidates considered = factor x batch size
    diversity_base: str = "mnlp"  # uncertainty strategy that ranks the diversity candidates
    #: the diversity strategy orders this many pool sentences batch by batch (a k-means per
    #: batch); the rest follow by the base strategy's score
    diversity_order_limit: int = setting(1000, ge=0)


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
    argilla_min_submitted: int = setting(1, ge=1)
    argilla_batch_size: int = setting(200, ge=1)
    #: the push policy: each sync keeps the next this-many sentences to ask (in the
    #: active-learning order) in each Argilla dataset, topping up as they get answered;
    #: the Review page's send button adds a batch on top (0 = the whole pool). 100 is
    #: about one annotator's session (20-40 s a sentence) and five active-learning
    #: batches, so annotators do not run dry between syncs, while a retrain's new order
    #: reaches the front of the queue after a few answers instead of after thousands
    argilla_queue_size: int = setting(100, ge=0, help="0 = the whole pool")
    #: hours between syncs that read every record of a dataset (the others read only what
    #: changed); 0 = read everything on every sync
    argilla_full_sync_hours: float = setting(24.0, ge=0)
    #: retries (exponential backoff from argilla_backoff_s) before ServiceUnavailable
    argilla_retries: int = setting(4, ge=0)
    argilla_backoff_s: float = setting(1.0, ge=0)
    retrain_min_new_labels: int = setting(50, ge=1)
    #: automatic retraining waits until a project has this many labelled source sentences
    #: (and target text, translations, a dev set: concner/jobs/readiness.py); on-demand retrains
    #: do not wait
    auto_retrain_min_source_labels: int = setting(100, ge=1)
    #: when a new model version replaces the active one (concner/jobs/promotion.py; shown on the
    #: Models page): "mean" = its mean target dev F1 is at most promote_tolerance F1 points
    #: below the active version's; "every_language" = that, and no target language's dev
    #: F1 drops by more than promote_tolerance points
    promote_rule: str = setting("mean", choices=PROMOTE_RULES)
    #: F1 points a new version may lose against the active one and still be promoted
    promote_tolerance: float = setting(0.5, ge=0, le=100, help="F1 points")
    keep_versions: int = setting(3, ge=1)
    #: worker: seconds between heartbeats (worker row and retrain lock)
    heartbeat_seconds: float = setting(5.0, gt=0)
    #: a worker whose heartbeat is older than this is dead (concner.jobs.liveness, for the CLI
    #: and the app), and so is the retrain lock it holds (more than twice heartbeat_seconds)
    lock_stale_seconds: float = 60.0
    #: Huey consumer threads (a retrain occupies one; predictions can use another)
    worker_threads: int = setting(2, ge=1)
    #: shard runners a sharded run (every-version evaluation, pool prediction; concner/jobs/shards.py) puts on
    #: the queue: at most this many workers (or consumer threads) share its shards. Set it to
    #: the number of worker processes. 2 = the two workers benchmarks/scale_out.py measured
    #: (1 -> 2 processes: see benchmarks/results/scale_out.md); a runner that finds no shard
    #: left returns after one claim transaction, so one too many costs next to nothing
    shard_workers: int = setting(2, ge=1)
    #: pool sentences per shard of a pool prediction (concner/jobs/predict.py; rounded up
    #: to whole prediction chunks of 256): 100,000 sentences make 49 shards, so two workers
    #: end within one shard (about 45 s on 2 AVX2 cores) of each other, and a killed
    #: worker's retry repeats at most that much work
    pool_shard_sentences: int = setting(2048, ge=1)
    #: modules imported by the worker that register sync hooks (each defines register_sync_hooks(registry); concner.jobs.sync_hooks)
    sync_modules: tuple[str, ...] = ()
    #: minutes between periodic syncs of every project
    sync_every_minutes: int = setting(5, ge=1, le=59)
    #: `concner up`'s own files: the supervisor state (supervisor.json) and the logs of the
    #: worker and the app (logs/)
    run_dir: str = "concner-data/run"
    #: `concner up` restarts a part that died after supervisor_backoff_s, doubling each time
    #: it dies again soon, up to supervisor_backoff_max_s; a part that died more than
    #: supervisor_max_restarts times within supervisor_window_s is given up (the rest stay up)
    supervisor_backoff_s: float = setting(1.0, gt=0)
    supervisor_backoff_max_s: float = 30.0
    supervisor_max_restarts: int = setting(5, ge=0)
    supervisor_window_s: float = setting(600.0, gt=0)


@dataclass(frozen=True)
class TranslationConfig:
    """MT backends and label projection (see concner/translation/)."""

    cache_path: str = "concner-data/translation-cache.sqlite"
    apertium_batch_size: int = setting(500, ge=1, help="sentences per apertium process call")
    apertium_timeout_s: float = setting(600.0, gt=0)
    #: entity types Apertium must not translate (it turns "Smith" into "Herrero")
    apertium_protect_types: tuple[str, ...] = ("PER",)
    dictionary_dir: str = "/usr/share/dictd"
    #: share of non-entity words the dictionary backend replaces (when it knows them)
    dictionary_share: float = setting(1.0, ge=0, le=1)
    dictionary_seed: int = 13
    hf_batch_size: int = setting(16, ge=1)
    hf_max_new_tokens: int = setting(256, ge=1)
    hf_num_beams: int = setting(1, ge=1)
    hf_device: str = setting("auto", choices=DEVICES)


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


#: section name -> its dataclass (the fields of :class:`Config` but ``paths``)
SECTIONS: dict[str, type] = {
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
    unknown = sorted(set(data) - set(SECTIONS) - {"paths"})
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}, paths")
    for key, value in (os.environ if env is None else env).items():
        if not key.startswith("CONCNER_") or "__" not in key:
            continue
        section, _, name = key[len("CONCNER_"):].lower().partition("__")
        if section in SECTIONS:
            data.setdefault(section, {})[name] = value
    built = {name: build_section(cls, name, data.get(name, {})) for name, cls in SECTIONS.items()}
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
    """Range checks; raises :class:`ConfigError` naming the key and the allowed range.

    Each setting's own range or choices come from its declaration (:func:`setting`); the
    checks below relate two settings."""
    for name in SECTIONS:
        check_section(name, getattr(config, name))

    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{key} {msg}")

    m, s = config.model, config.services
    need(m.window_stride < m.max_length // 2, "model.window_stride",
         f"must be in [0, max_length/2), got {m.window_stride} with max_length {m.max_length}")
    need(s.lock_stale_seconds > 2 * s.heartbeat_seconds, "services.lock_stale_seconds",
         "must be more than twice services.heartbeat_seconds")
    need(s.supervisor_backoff_s <= s.supervisor_backoff_max_s,
         "services.supervisor_backoff_s", "must be > 0 and <= services.supervisor_backoff_max_s")
    need(len(config.data.entity_types) >= 1, "data.entity_types", "needs at least one type")
