"""A running job's progress for the Training page: ONE fraction across its stages, the
elapsed time and an estimate of the time left, and the per-epoch dev F1.

Pure functions over the run's ``progress`` JSON (what :class:`concner.jobs.context.RunProgress`
writes: ``stage``, ``epoch``, ``step``, ``total``, ``plan`` = optimiser steps per training
stage, ``dev_f1`` = one row per evaluated epoch, ``chosen`` = the epoch kept per stage).

A retrain's line: the training stages in order (stage 1: contrastive + CE epochs, then
KD), weighted by their optimiser steps, take :data:`TRAINING_SHARE` of it; the final
evaluation and publication the rest. Other jobs (prediction, translation) have one stage:
their line is its ``step / total``.
"""

from __future__ import annotations

import pandas as pd

#: the training stages in the order a retrain runs them
TRAINING_STAGES = ("stage1", "kd")
STAGE_NAMES = {"stage1": "stage 1", "kd": "KD", "eval": "dev evaluation",
               "evaluate": "evaluation", "publish": "publishing", "snapshot": "snapshot",
               "queued": "starting", "done": "done", "predict": "prediction"}
#: share of a retrain's line taken by training; the final evaluation and publication
#: take the rest
TRAINING_SHARE = 0.95
#: stages before training (share 0) and after it
BEFORE_TRAINING = ("queued", "snapshot")
AFTER_TRAINING = ("evaluate", "publish")
#: no estimate before this much of the line is done, this many seconds ran, and this many
#: optimiser steps were reported (early steps are the slow, unrepresentative ones)
MIN_FRACTION, MIN_SECONDS, MIN_STEPS = 0.02, 5.0, 3


def overall_fraction(progress: dict | None) -> float | None:
    """Where the job is on its one line, 0..1; None when nothing tells (no progress)."""
    if not progress:
        return None
    stage = progress.get("stage")
    if stage == "done":
        return 1.0
    if stage in BEFORE_TRAINING:
        return 0.0
    if not _plan(progress):  # a one-stage job, or a retrain from before plans were written
        total = progress.get("total")
        if not total:
            return None
        return _clip(float(progress.get("step") or 0) / float(total))
    if stage in AFTER_TRAINING:
        return TRAINING_SHARE + (1 - TRAINING_SHARE) * (0.5 if stage == "publish" else 0.0)
    steps = _training_steps(progress)
    if steps is None:
        return None
    done, total = steps
    return _clip(TRAINING_SHARE * done / max(1, total))


def seconds_left(progress: dict | None, elapsed: float | None) -> float | None:
    """Estimated seconds to the end of the line at the pace so far, or None until there
    is enough to go on (see :data:`MIN_FRACTION`, :data:`MIN_SECONDS`, :data:`MIN_STEPS`)."""
    fraction = overall_fraction(progress)
    if fraction is None or elapsed is None or elapsed < MIN_SECONDS or fraction < MIN_FRACTION:
        return None
    if fraction >= 1.0:
        return 0.0
    steps = _training_steps(progress) if _plan(progress) else None
    done = steps[0] if steps is not None else int(progress.get("step") or 0)
    if progress.get("stage") not in AFTER_TRAINING and done < MIN_STEPS:
        return None
    return elapsed * (1.0 - fraction) / fraction


def _plan(progress: dict) -> dict[str, int]:
    return {k: int(v) for k, v in (progress.get("plan") or {}).items()
            if k in TRAINING_STAGES and int(v) > 0}


def _training_steps(progress: dict) -> tuple[int, int] | None:
    """``(optimiser steps done, planned in all)`` of a retrain in a training stage (or a
    dev evaluation between epochs); the running stage's real total replaces its plan."""
    stage = progress.get("stage")
    current = progress.get("evaluating") if stage == "eval" else stage
    steps = _plan(progress)
    if current not in steps:
        return None
    if progress.get("total"):
        steps[current] = int(progress["total"])
    order = [s for s in TRAINING_STAGES if s in steps]
    done = sum(steps[s] for s in order[:order.index(current)])
    done += min(int(progress.get("step") or 0), steps[current])
    return done, sum(steps.values())


def progress_line(progress: dict | None, elapsed: float | None) -> str:
    """``stage 1 · epoch 2 of 3 · 41% · elapsed 1 min 05 s · about 1 min 33 s left``
    (``estimating…`` until :func:`seconds_left` can tell)."""
    from concner.ui.views import duration_text

    if not progress:
        return ""
    stage = str(progress.get("stage") or "")
    parts = [STAGE_NAMES.get(stage, stage)]
    if stage == "eval" and progress.get("evaluating"):
        parts[0] = f"dev evaluation after {STAGE_NAMES.get(progress['evaluating'])} epoch " \
                   f"{progress.get('epoch')}"
    elif progress.get("epoch") is not None and stage in TRAINING_STAGES:
        parts.append(f"epoch {progress['epoch']}")
    fraction = overall_fraction(progress)
    if fraction is not None:
        parts.append(f"{fraction:.0%}")
    if elapsed is not None:
        parts.append(f"elapsed {duration_text(elapsed)}")
        left = seconds_left(progress, elapsed)
        if stage != "done":
            parts.append("estimating…" if left is None else f"about {duration_text(left)} left")
    return " · ".join(p for p in parts if p)


def dev_f1_frame(progress: dict | None) -> pd.DataFrame:
    """Per-epoch dev F1 for the chart: one row per (evaluated epoch, language) with
    ``epoch`` (1, 2, ... across the stages, so KD continues after stage 1), ``label``
    (``stage 1 epoch 2``), ``language`` and ``F1`` (percent). The mean over languages
    (the selection score) is the row ``language = "score"``."""
    columns = ["epoch", "label", "language", "F1"]
    rows = []
    for n, entry in enumerate((progress or {}).get("dev_f1") or [], start=1):
        label = f"{STAGE_NAMES.get(entry.get('stage'), entry.get('stage'))} epoch " \
                f"{entry.get('epoch')}"
        for key, value in entry.items():
            if key in ("stage", "epoch") or not isinstance(value, int | float):
                continue
            rows.append({"epoch": n, "label": label, "language": key,
                         "F1": round(100 * float(value), 2)})
    return pd.DataFrame(rows, columns=columns)


def kept_text(progress: dict | None) -> str:
    """Which epoch each stage keeps: ``kept stage 1 epoch 3 (dev score 81.20)``; while a
    stage trains, its best epoch so far (the same rule: the first with the best score)."""
    entries = (progress or {}).get("dev_f1") or []
    chosen = (progress or {}).get("chosen") or {}
    best: dict[str, dict] = {}
    for entry in entries:
        stage = entry.get("stage")
        if stage in chosen:
            if entry.get("epoch") == chosen[stage]:
                best[stage] = entry
        elif "score" in entry and (stage not in best or entry["score"] > best[stage]["score"]):
            best[stage] = entry
    parts = []
    for stage in TRAINING_STAGES:
        if stage in best:
            word = "kept" if stage in chosen else "best so far"
            parts.append(f"{STAGE_NAMES[stage]}: {word} epoch {best[stage]['epoch']} "
                         f"(dev score {100 * float(best[stage]['score']):.2f})")
    return " · ".join(parts)


def _clip(value: float) -> float:
    return max(0.0, min(1.0, value))
