"""``concner train --config FILE.toml [--out DIR]``: train a model headless.

The ``[paths]`` section of the config names the files (paths relative to the current
directory; ``{lang}`` in a path is replaced by each language it applies to):

``train``
    labelled source file (CoNLL/TSV, JSONL or a ``datasets`` folder), language
    ``data.source_lang``; sampled down to ``data.train_sample`` sentences with
    ``data.sample_seed`` when that is > 0.
``translations``
    labelled translations of the training file (needed when ``loss.use_translation``):
    a path with ``{lang}`` (expanded over ``data.target_langs``), a table
    ``{es = "...", de = "..."}``, or one path when there is one target language.
    Pairs are made by ``meta.source_id``, else by order (see :class:`TrainData`).
``unlabelled``
    target-language text for distillation (``loss.kd``), same forms; ``.txt`` files are
    read as one sentence per line.
``dev``
    labelled dev files, same forms, expanded over ``data.source_lang`` and
    ``data.target_langs``; the first ``data.dev_max_sentences`` of each are used when > 0.
``out``
    output folder (``--out`` wins).

The model is saved to the output folder, with ``metrics.json`` beside its weights: the
config, the counts of sentences and entity labels the run saw, the per-epoch history, dev
F1 per language, the time taken and the machine.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from concner.errors import ConfigError, DataFormatError

log = logging.getLogger("concner.train")

#: how ``concner train`` (no --repair-iob: the config decides) names the fix of a hinted
#: error (see concner.errors)
TRAIN_HINTS = {
    "repair_iob": "fix the file, or set repair_iob = true in the [data] section of the "
                  "--config file to turn stray I- tags into B-",
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from a TOML config (stage 1, optional distillation)",
        description="Train ConCNER (or one of its baselines, by config flags) from the files in "
                    "the config's [paths] section; prints dev F1 per language at the end and "
                    "writes the model and metrics.json to the output folder. Any setting can "
                    "be overridden with CONCNER_<SECTION>__<KEY> environment variables.")
    p.add_argument("--config", required=True, help="TOML config file (see configs/example.toml)")
    p.add_argument("--out", help="output folder for the model (default: [paths] out)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--fresh", action="store_true",
                   help="ignore the checkpoint a killed run left in OUT/.resume and start over "
                        "(by default a rerun with the same config and data resumes from it)")
    p.set_defaults(func=run_train)


#: where ``concner train`` keeps its per-epoch checkpoint inside the output folder (while
#: ``training.checkpoint_every_epoch``); a killed run rerun with the same config and data
#: resumes from it, and it is removed once the model is saved
RESUME_FOLDER = ".resume"


# ------------------------------------------------------------------------------ inputs
def expand_paths(value: Any, langs: list[str], key: str) -> dict[str, str]:
    """``[paths]`` entry -> ``{lang: path}``: a ``{lang}`` template over ``langs``, a table
    ``{lang = path}``, or a single path (only when ``langs`` has one language)."""
    if isinstance(value, Mapping):
        return {str(lang): str(path) for lang, path in value.items()}
    if isinstance(value, str):
        if "{lang}" in value:
            if not langs:
                raise ConfigError(f"paths.{key} uses {{lang}} but no languages are configured "
                                  "(set data.target_langs)")
            return {lang: value.replace("{lang}", lang) for lang in langs}
        if len(langs) == 1:
            return {langs[0]: value}
        raise ConfigError(f"paths.{key} is one file but there are {len(langs)} languages "
                          f"({', '.join(langs) or 'none'}); use a {{lang}} template or a table "
                          f"like {key} = {{ es = \"...\" }}")
    raise ConfigError(f"paths.{key} must be a path, a path with {{lang}}, or a table lang = path")


def _read(path: str, lang: str, repair_iob: bool, *, labelled: bool = True):
    from concner.corpus import read_any, read_text_lines

    p = Path(path)
    if not p.exists() and p.suffix:
        raise DataFormatError("file not found; fix the path in the config's [paths] section",
                              path=path)
    if not labelled and p.suffix.lower() == ".txt":
        return read_text_lines(path, lang)
    try:
        sentences = read_any(path, lang, repair_iob=repair_iob)
    except DataFormatError as exc:
        raise exc.for_controls(TRAIN_HINTS) from None
    return sentences if labelled else [s.with_tags(None) for s in sentences]


def load_inputs(config) -> tuple[Any, dict]:
    """Read the files of ``config.paths`` into a :class:`TrainData` and a description of
    what was read (counts of sentences and entity labels per part)."""
    from concner.corpus import sample
    from concner.method.training import TrainData

    paths, data_cfg = config.paths, config.data
    if "train" not in paths and config.training.epochs > 0:
        raise ConfigError("[paths] needs train = \"<labelled source file>\"")
    if config.loss.use_translation and config.training.epochs > 0 and "translations" not in paths:
        raise ConfigError("loss.use_translation is true but [paths] has no translations; add "
                          "translations = \"...{lang}...\" or set loss.use_translation = false")
    if config.loss.kd and config.training.kd_epochs > 0 and "unlabelled" not in paths:
        raise ConfigError("loss.kd is true but [paths] has no unlabelled target text; add "
                          "unlabelled = \"...{lang}...\" or set loss.kd = false")
    src_lang = data_cfg.source_lang
    targets = list(data_cfg.target_langs)
    repair = data_cfg.repair_iob
    source = []
    if "train" in paths:
        files = expand_paths(paths["train"], [src_lang], "train")
        if len(files) != 1:
            raise ConfigError(f"paths.train names {len(files)} files; give one labelled source "
                              f"file (language data.source_lang = {src_lang!r})")
        (lang, path), = files.items()
        source = _read(path, lang, repair)
        if data_cfg.train_sample:
            if data_cfg.train_sample > len(source):
                raise ConfigError(f"data.train_sample = {data_cfg.train_sample} but {path} has "
                                  f"only {len(source)} sentences")
            source = sample(source, data_cfg.train_sample, data_cfg.sample_seed)
    translations = None
    if config.loss.use_translation and "translations" in paths:
        translations = []
        for lang, path in expand_paths(paths["translations"], targets, "translations").items():
            translations += _read(path, lang, repair)
        if data_cfg.train_sample:  # keep the translations of the sampled sentences only
            if any(t.meta.get("source_id") is None for t in translations):
                raise ConfigError("data.train_sample needs translations that carry "
                                  "meta.source_id (as `concner translate` writes them), to "
                                  "keep the translations of the sampled sentences")
            kept = {s.id for s in source}
            translations = [t for t in translations if t.meta.get("source_id") in kept]
    unlabelled = []
    if config.loss.kd and "unlabelled" in paths:
        for lang, path in expand_paths(paths["unlabelled"], targets, "unlabelled").items():
            unlabelled += _read(path, lang, repair, labelled=False)
    dev = {}
    if "dev" in paths:
        for lang, path in expand_paths(paths["dev"], [src_lang] + targets, "dev").items():
            sentences = _read(path, lang, repair)
            dev[lang] = sentences[:data_cfg.dev_max_sentences or None]
    data = TrainData(source, translations, None, unlabelled, dev)
    seen = {
        "source": _label_counts(source),
        "translated": _label_counts(translations or []),
        "unlabelled_target": {"sentences": len(unlabelled)},
        "dev": {lang: _label_counts(s) for lang, s in dev.items()},
    }
    return data, seen


def _label_counts(sentences) -> dict:
    entities = Counter(span.label for s in sentences for span in s.spans)
    return {"sentences": len(sentences), "entities": dict(sorted(entities.items()))}


# ------------------------------------------------------------------------------ progress
class _Bars:
    """tqdm bars driven by training's progress events."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.stage = quiet, None, None

    def __call__(self, event) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if event.stage == "eval":
            shown = " ".join(f"{k} {100 * v:.1f}" for k, v in event.metrics.items())
            (self.bar.write if self.bar else print)(f"epoch {event.epoch} dev F1: {shown}")
            return
        if event.stage != self.stage:
            self.close()
            self.stage = event.stage
            label = "stage 1" if event.stage == "stage1" else "distillation"
            self.bar = tqdm(total=event.total_steps, desc=label, unit="step", file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.update(event.step - self.bar.n)
        self.bar.set_postfix({"epoch": event.epoch, "loss": f"{event.loss:.4f}",
                              **{k: f"{v:.3f}" for k, v in event.losses.items()}}, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ------------------------------------------------------------------------------ command
def run_train(args) -> int:
    from concner.config import load_config

    config = load_config(args.config)
    out = args.out or config.paths.get("out")
    if not out:
        raise ConfigError("give an output folder: --out DIR or out = \"...\" in [paths]")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="concner: %(message)s", stream=sys.stderr)

    from concner.method.training import train

    data, seen = load_inputs(config)
    log.info("source %d sentences, translations %d, unlabelled %d, dev %s",
             len(data.source), len(data.translations or []), len(data.unlabelled_target),
             {lang: len(s) for lang, s in data.dev.items()})
    from concner.method import checkpoint

    resume = Path(out) / RESUME_FOLDER
    if args.fresh:
        checkpoint.clear(resume)
    bars = _Bars(args.quiet)
    try:
        result = train(config, data, callback=bars, resume_dir=resume,
                       notify=lambda line: log.info("checkpoint: %s", line))
    finally:
        bars.close()
    result.bundle.save(out)
    checkpoint.clear(resume)  # the model is saved: nothing left to resume
    metrics = _metrics(config, result, seen, args)
    Path(out, "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False),
                                         encoding="utf-8")
    print(format_f1_table(result.dev_metrics))
    print(f"model and metrics.json written to {out} ({result.seconds:.0f} s)")
    return 0


def format_f1_table(reports: Mapping[str, dict]) -> str:
    """Per-language precision/recall/F1 (percent) and the mean F1."""
    if not reports:
        return "no dev set: nothing evaluated"
    lines = [f"{'lang':<6}{'P':>7}{'R':>7}{'F1':>7}{'support':>9}"]
    for lang, r in reports.items():
        lines.append(f"{lang:<6}{100 * r['precision']:>7.1f}{100 * r['recall']:>7.1f}"
                     f"{100 * r['f1']:>7.1f}{r['support']:>9}")
    mean = sum(r["f1"] for r in reports.values()) / len(reports)
    lines.append(f"{'mean':<6}{'':>14}{100 * mean:>7.1f}")
    return "\n".join(lines)


def _metrics(config, result, seen: dict, args) -> dict:
    import torch

    dev_f1 = {lang: r["f1"] for lang, r in result.dev_metrics.items()}
    return {
        "command": " ".join(["concner"] + sys.argv[1:]) if sys.argv else "concner train",
        "config_file": str(args.config),
        "config": config.to_dict(),
        "seed": config.training.seed,
        "seen": seen,
        "dev_f1": dev_f1,
        "mean_dev_f1": sum(dev_f1.values()) / len(dev_f1) if dev_f1 else None,
        "dev": result.dev_metrics,
        "history": result.history,
        "seconds": round(result.seconds, 1),
        "n_truncated": result.n_truncated,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": config.training.num_threads or torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
