"""Incremental model updates: should a retrain start from scratch, or update the active
model with the few labels that are new?

A *full* retrain trains a fresh model on every labelled sentence (stage 1 on source +
translations, then distillation when ``loss.kd``). An *incremental* update warm-starts
from the active model and trains ``training.incremental_epochs`` epochs on the new (or
corrected) labelled sentences plus a *replay* sample of ``training.replay_size`` old ones
(against forgetting), without distillation. It takes a fraction of the time, so
annotators see their labels in the model within minutes.

Translations. An update uses the translations already stored for its new and replayed
source sentences (``training.incremental_translations``): they are in the snapshot, so
they cost only their forward/backward passes (no MT engine runs), and they keep the
translation-contrastive loss and the translated labels that carry the model into the
target languages, which an update on source sentences alone would let drift. Newly
labelled sentences usually have no translation yet (the translate job adds them; the
next full retrain uses them).

:func:`plan_retrain` decides, from what the store records (the labelled training
sentences now with their label versions, and what the active model learnt from); it is
pure and deterministic for a seed. A full retrain is chosen when one was asked for, when
updates are off (``training.incremental = false``), when there is no active model or no
record of what it learnt from, when the settings that shape a model changed, when
sentences it learnt from are no longer training data, when nothing is new, when more than
``training.incremental_max_new_labels`` sentences are new, or after
``training.full_retrain_every`` updates in a row. :func:`build_incremental_data` and
:func:`incremental_config` give :func:`concner.method.training.train` what an update trains on.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from concner.config import Config
from concner.errors import PlanError

if TYPE_CHECKING:
    from concner.method.training import TrainData
    from concner.store.snapshot import Snapshot

__all__ = [
    "ActiveModel",
    "RetrainPlan",
    "build_incremental_data",
    "config_changes",
    "data_changes",
    "incremental_config",
    "plan_retrain",
    "sample_replay",
]

#: settings that do not change what a model learns (speed, devices, evaluation, and the
#: incremental settings themselves): changing them does not call for a full retrain
NOT_MODEL_SHAPING: dict[str, frozenset[str]] = {
    "training": frozenset({"num_threads", "device", "bf16", "eval_batch_size",
                           "eval_every_epoch", "incremental", "incremental_max_new_labels",
                           "incremental_epochs", "replay_size", "incremental_translations",
                           "full_retrain_every", "embedding_rows", "cpu_bf16"}),
    "model": frozenset({"window_stride", "decoding", "inference_precision"}),  # prediction only
}
#: settings added after models were trained: a model whose config lacks one was trained
#: as with this value (so adding the setting does not call for a full retrain)
ADDED_LATER: dict[str, object] = {"training.early_stop_patience": 0}
#: the sections compared (all their fields but the above); ``data``: these fields only
COMPARED_DATA_FIELDS = ("source_lang", "target_langs", "entity_types")
COMPARED_SECTIONS = ("model", "loss", "training")
_MISSING = "<unset>"


@dataclass(frozen=True)
class ActiveModel:
    """What the store knows about the model an update would start from.

    Attributes:
        model_version_id: its ``model_versions`` row.
        version: its version number (for messages).
        trained_on: sentence id -> label version of every labelled sentence it learnt
            from, or None when unknown (a model trained before incremental updates).
        depth: incremental updates in a row it went through (0: a full retrain made it).
        config: the configuration it was trained with (``Config.to_dict()``), or None.
        label_counts: the label counts of its snapshot (``Snapshot.label_counts``), to say
            what else changed since it when no label is new.
    """

    model_version_id: int
    version: int
    trained_on: Mapping[int, int] | None
    depth: int = 0
    config: Mapping | None = None
    #: the ``label_counts`` of the snapshot it was trained on (None when unknown)
    label_counts: Mapping | None = None


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain does.

    Attributes:
        kind: ``"full"`` (a fresh model on every labelled sentence) or ``"incremental"``
            (warm start from ``base_model_version_id`` on ``new_ids + replay_ids``).
        new_ids: labelled sentences new or relabelled since the active model (a full plan
            lists them too, for the record; all of them when there is no active model).
        replay_ids: old labelled sentences replayed by an incremental update (sorted; never
            one of ``new_ids``); empty for a full retrain.
        reason: why this kind, in words (shown with the run).
        depth: incremental updates in a row the resulting model goes through (0 = full).
        base_model_version_id: the model an incremental update starts from, else None.
    """

    kind: Literal["full", "incremental"]
    new_ids: tuple[int, ...]
    replay_ids: tuple[int, ...]
    reason: str
    depth: int = 0
    base_model_version_id: int | None = None


def _versions(labelled: Mapping[int, int], what: str) -> dict[int, int]:
    if not isinstance(labelled, Mapping):
        raise PlanError(f"{what} must map sentence ids to label versions, got "
                        f"{type(labelled).__name__}")
    out = {}
    for key, version in labelled.items():
        if isinstance(key, bool) or not isinstance(key, int) or isinstance(version, bool) \
                or not isinstance(version, int):
            raise PlanError(f"{what}: sentence ids and label versions must be whole numbers, "
                            f"got {key!r}: {version!r}")
        out[key] = version
    return out


def _shaping(config: Mapping) -> dict[str, object]:
    """The model-shaping settings of a ``Config.to_dict()`` (JSON-normalised)."""
    config = json.loads(json.dumps(config, default=list))
    out = {f"data.{k}": config.get("data", {}).get(k, _MISSING) for k in COMPARED_DATA_FIELDS}
    for section in COMPARED_SECTIONS:
        values = config.get(section, {})
        skip = NOT_MODEL_SHAPING.get(section, frozenset())
        out.update({f"{section}.{k}": v for k, v in values.items() if k not in skip})
    return out


def config_changes(old: Mapping | None, new: Config) -> list[str]:
    """The model-shaping settings (``section.key``) that differ between the config a model
    was trained with (``old``, a ``Config.to_dict()``) and ``new``; ``["(unknown)"]`` when
    ``old`` is None."""
    if old is None:
        return ["(unknown)"]
    before, after = _shaping(old), _shaping(new.to_dict())
    return sorted(k for k in before.keys() | after.keys()
                  if before.get(k, ADDED_LATER.get(k, _MISSING))
                  != after.get(k, ADDED_LATER.get(k, _MISSING)))


def sample_replay(old_ids: Iterable[int], size: int, seed: int, salt: int = 0) -> tuple[int, ...]:
    """``size`` ids drawn without replacement from ``old_ids`` (all of them when there are
    fewer), sorted. The draw depends only on the set of ids, ``seed`` and ``salt`` (the
    retrain job passes the update's position in a chain of updates, so consecutive updates
    rehearse different old sentences)."""
    if size < 0:
        raise PlanError(f"replay size must be >= 0, got {size} (training.replay_size)")
    pool = sorted(set(old_ids))
    if size >= len(pool):
        return tuple(pool)
    return tuple(sorted(random.Random(f"replay:{seed}:{salt}").sample(pool, size)))


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}"


def data_changes(before: Mapping | None, now: Mapping | None) -> list[str]:
    """What changed in a project's data besides its labelled training sentences, in words,
    between two snapshots' ``label_counts`` (translations, gold dev sentences per
    language, unlabelled target sentences); empty when nothing did or a side is unknown."""
    if not before or not now:
        return []
    out = []
    old_tr, new_tr = int(before.get("translated", 0)), int(now.get("translated", 0))
    if new_tr != old_tr:
        out.append(f"{_count(abs(new_tr - old_tr), 'translations')} "
                   f"{'more' if new_tr > old_tr else 'fewer'} ({old_tr:,} to {new_tr:,})")
    old_dev, new_dev = dict(before.get("dev_by_lang") or {}), dict(now.get("dev_by_lang") or {})
    dev = [f"{lang} {old_dev.get(lang, 0):,} to {new_dev.get(lang, 0):,}"
           for lang in sorted(old_dev.keys() | new_dev.keys())
           if old_dev.get(lang, 0) != new_dev.get(lang, 0)]
    if dev:
        out.append("gold dev sentences " + ", ".join(dev))
    old_un, new_un = int(before.get("unlabelled", 0)), int(now.get("unlabelled", 0))
    if new_un != old_un:
        out.append(f"unlabelled target sentences {old_un:,} to {new_un:,}")
    return out


def _nothing_new(name: str, changes: list[str]) -> str:
    """Why a retrain with no new training label is a full one, saying what did change."""
    if changes:
        return (f"no labelled training sentence is new or corrected since {name}, but "
                f"{'; '.join(changes)}: an update trains on new labels only, so a full "
                "retrain takes these in")
    return (f"no labelled training sentence is new or corrected since {name}, and its "
            "translations, dev and unlabelled sentences are as they were: a full retrain "
            "repeats its training")


def plan_retrain(labelled: Mapping[int, int], active: ActiveModel | None, config: Config, *,
                 force_full: bool = False, label_counts: Mapping | None = None) -> RetrainPlan:
    """Decide how to retrain.

    Args:
        labelled: sentence id -> label version (annotation id of its current label) of
            every labelled training sentence now (``Snapshot.label_versions``).
        active: the active model (None when the project has none yet).
        config: the run's configuration (``training.incremental*``, ``replay_size``,
            ``full_retrain_every``, ``seed``; its model-shaping settings are compared
            with the active model's).
        force_full: a full retrain was asked for.
        label_counts: the snapshot's ``label_counts``; with the active model's, the reason
            for a full retrain without new labels says what else changed.

    Returns:
        a :class:`RetrainPlan`; the same inputs always give the same plan.

    Raises:
        PlanError: ``labelled`` or ``active.trained_on`` is not a mapping of whole numbers,
            or ``active.depth`` is negative.
    """
    tc = config.training
    now = _versions(labelled, "labelled")
    known = None if active is None or active.trained_on is None \
        else _versions(active.trained_on, "active.trained_on")
    if active is not None and active.depth < 0:
        raise PlanError(f"active.depth must be >= 0, got {active.depth}")
    new = tuple(sorted(i for i, v in now.items() if known is None or known.get(i) != v))

    def full(reason: str) -> RetrainPlan:
        return RetrainPlan("full", new, (), reason)

    if force_full:
        return full("a full retrain was asked for")
    if not tc.incremental:
        return full("incremental updates are off (training.incremental = false)")
    if active is None:
        return full("no active model to update yet")
    name = f"the active model v{active.version}"
    if known is None:
        return full(f"{name} has no record of the labels it learnt from")
    changed = config_changes(active.config, config)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5
                                          else "")
        return full(f"settings that shape the model changed since {name}: {shown}")
    gone = sorted(known.keys() - now.keys())
    if gone:
        return full(f"{len(gone)} sentences {name} learnt from are no longer labelled "
                    f"training data (e.g. id {gone[0]}); an update cannot unlearn them")
    if not new:
        return full(_nothing_new(name, data_changes(active.label_counts, label_counts)))
    if len(new) > tc.incremental_max_new_labels:
        return full(f"{len(new)} new or corrected labelled sentences > "
                    f"training.incremental_max_new_labels = {tc.incremental_max_new_labels}")
    if active.depth >= tc.full_retrain_every:
        return full(f"{name} went through {active.depth} incremental updates in a row "
                    f"(training.full_retrain_every = {tc.full_retrain_every})")
    depth = active.depth + 1
    replay = sample_replay(now.keys() - set(new), tc.replay_size, tc.seed, salt=depth)
    return RetrainPlan(
        "incremental", new, replay,
        f"{len(new)} new or corrected labelled sentences <= "
        f"training.incremental_max_new_labels = {tc.incremental_max_new_labels}: warm start "
        f"from v{active.version} with {len(replay)} replayed (update {depth} of at most "
        f"{tc.full_retrain_every} in a row)",
        depth=depth, base_model_version_id=active.model_version_id)


def incremental_config(config: Config) -> Config:
    """``config`` as an incremental update trains: ``training.incremental_epochs`` epochs
    of stage 1 and no distillation (``loss.kd`` off)."""
    tc = config.training
    return dataclasses.replace(
        config, training=dataclasses.replace(tc, epochs=tc.incremental_epochs, kd_epochs=0),
        loss=dataclasses.replace(config.loss, kd=False))


def build_incremental_data(snap: Snapshot, plan: RetrainPlan, config: Config) -> TrainData:
    """What an incremental update trains on: the plan's new and replayed sentences (source
    sentences first, then labelled target ones, in snapshot order), their stored
    translations when ``training.incremental_translations`` and ``loss.use_translation``,
    no unlabelled text (no distillation), and every gold dev set (model selection and
    the promotion gate compare on the same dev sentences as a full retrain).

    Raises:
        PlanError: ``plan`` is not incremental, or names sentences that are not labelled
            training sentences of ``snap`` (plan and data must come from one snapshot).
    """
    from concner.method.training import TrainData

    if plan.kind != "incremental":
        raise PlanError(f"a {plan.kind} plan trains on the whole snapshot "
                        "(concner.jobs.retrain.build_train_data), not on an incremental selection")
    chosen = set(plan.new_ids) | set(plan.replay_ids)
    available = {s.meta["db_id"] for s in (*snap.source, *snap.target_gold)}
    missing = sorted(chosen - available)
    if missing:
        raise PlanError(f"the plan names {len(missing)} sentences that are not labelled "
                        f"training sentences of this snapshot (e.g. id {missing[0]}); make the "
                        "plan from the same snapshot")
    index: dict[int, int] = {}  # snapshot source index -> index in the update's source
    source = []
    for i, sent in enumerate(snap.source):
        if sent.meta["db_id"] in chosen:
            index[i] = len(source)
            source.append(sent)
    source += [s for s in snap.target_gold if s.meta["db_id"] in chosen]
    translations, pairs = [], []
    if config.training.incremental_translations and config.loss.use_translation:
        for i, tr in snap.pairs:
            if i in index:
                pairs.append((index[i], len(translations)))
                translations.append(tr)
    return TrainData(source=source, translations=translations or None, pairs=pairs or None,
                     unlabelled_target=[], dev=dict(snap.dev))
