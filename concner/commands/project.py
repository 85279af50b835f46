"""``concner project``: drive a project without the app.

  concner project create NAME --source en --targets de,es [--labels PER,ORG,LOC] [--encoder E]
  concner project import NAME FILE --role source|translation|target --split train|dev|pool
  concner project status NAME [--json]
  concner project translate NAME --backend apertium|dictionary|hf|file [--target de,nl]
          [--pair eng-deu] [--share S] [--seed N] [--dictionary-dir D] [--model M]
          [--translations FILE] [--cache PATH | --no-cache]
  concner project next NAME [--side target|source] [--lang L] [--n 20] [--json]
  concner project retrain NAME          (queue a retrain now; coalesces with a queued one)
  concner project auto-retrain NAME on|off   (may the worker retrain it by itself?)
  concner project evaluate NAME [--version N]  (queue an evaluation on the current dev sets)
  concner project cancel RUN_ID
  concner project delete NAME [--yes]
  concner project imports NAME [--json]
  concner project unimport NAME IMPORT_ID [--yes]   (delete the sentences of one import)

``translate`` runs here and now (a recorded run, the job the worker runs for the app): the
labelled source sentences without a usable translation into each target language (default:
all of the project's) are translated, their tags projected, and the pairs imported in one
transaction per language; Ctrl-C cancels and imports nothing. ``delete`` removes the project's
rows and checkpoints for good, after you type its name (or with ``--yes``).

``next`` lists the sentences to correct (``target``) or to label (``source``) next, in the
active-learning order the worker stored with the active model's pool prediction (what the
Review page and the Argilla push use).

``import`` reads CoNLL/TSV or JSONL (labelled) or plain text (one sentence per line,
unlabelled) with :mod:`concner.corpus` and writes everything in ONE transaction: a
validation error names the file and line and imports nothing. Translations are linked to
their source sentence by ``meta.source_id`` (JSONL) or by the same sentence id.
"""

from __future__ import annotations

import os
import sys

from concner.commands.common import config_from_args, open_store
from concner.commands.project_runs import run_cancel, run_evaluate, run_retrain
from concner.commands.project_status import run_auto_retrain, run_next, run_status
from concner.commands.project_translate import run_translate


def register(subparsers) -> None:
    p = subparsers.add_parser("project", help="create, import into and inspect projects",
                              description=__doc__,
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML config file (store URL etc.; else CONCNER_CONFIG)")
    sub = p.add_subparsers(dest="project_command", metavar="ACTION", required=True)

    c = sub.add_parser("create", help="create a project")
    c.add_argument("name")
    c.add_argument("--source", required=True, help="source language (ISO 639-1), e.g. en")
    c.add_argument("--targets", required=True, help="comma-separated target languages")
    c.add_argument("--labels", help="comma-separated entity types (default data.entity_types)")
    c.add_argument("--encoder", help="hub id or local folder (default model.encoder)")
    c.add_argument("--training-config", metavar="TOML",
                   help="TOML with per-project overrides ([training], [loss], [model] ...)")
    c.set_defaults(func=run_create)

    i = sub.add_parser("import", help="import sentences (one transaction)")
    i.add_argument("name")
    i.add_argument("file")
    i.add_argument("--role", required=True, choices=["source", "translation", "target"])
    i.add_argument("--split", required=True, choices=["train", "dev", "pool"])
    i.add_argument("--lang", help="language of the file (needed for CoNLL and text)")
    i.add_argument("--format", dest="fmt", default="auto", choices=["auto", "conll", "jsonl", "text"])
    i.add_argument("--author", default="import", help="author recorded on the labels")
    i.add_argument("--backend", default="import",
                   help="MT backend recorded on translation links (unless meta.backend)")
    i.add_argument("--repair-iob", action="store_true", help="turn stray I-X into B-X (counted)")
    i.set_defaults(func=run_import)

    s = sub.add_parser("status", help="counts, runs, models, metrics and workers")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=run_status)

    n = sub.add_parser("next", help="the sentences to correct or label next (active learning)")
    n.add_argument("name")
    n.add_argument("--side", default="target", choices=["target", "source"],
                   help="target: predictions to correct (default); source: sentences to label")
    n.add_argument("--lang", help="only this language")
    n.add_argument("--n", type=int, help="how many (default active.batch_size)")
    n.add_argument("--json", action="store_true",
                   help="JSON lines: rank, id, lang, text, strategy, score, spans")
    n.set_defaults(func=run_next)

    r = sub.add_parser("retrain", help="queue a retrain now")
    r.add_argument("name")
    r.set_defaults(func=run_retrain)

    a = sub.add_parser("auto-retrain", help="switch automatic retraining on or off (without "
                                             "on/off: show it and the readiness checklist)")
    a.add_argument("name")
    a.add_argument("state", nargs="?", choices=["on", "off"])
    a.set_defaults(func=run_auto_retrain)

    e = sub.add_parser("evaluate", help="queue an evaluation of model versions on the current "
                                        "dev sets (the worker runs it)")
    e.add_argument("name")
    e.add_argument("--version", type=int, metavar="N",
                   help="only version N (default: every stored version)")
    e.set_defaults(func=run_evaluate)

    k = sub.add_parser("cancel", help="cancel a queued or running job")
    k.add_argument("run_id", type=int)
    k.set_defaults(func=run_cancel)

    from concner.translation.requests import BACKENDS

    t = sub.add_parser("translate", help="translate the labelled source sentences now")
    t.add_argument("name")
    t.add_argument("--backend", required=True, choices=BACKENDS)
    t.add_argument("--target", help="target language(s), comma-separated (default: all of the "
                                    "project's)")
    t.add_argument("--pair", help="apertium: the pair, e.g. eng-deu (default from the languages)")
    t.add_argument("--share", type=float,
                   help="dictionary: share of words to replace (default translation."
                        "dictionary_share)")
    t.add_argument("--seed", type=int,
                   help="dictionary: seed of the word choice (default translation.dictionary_seed)")
    t.add_argument("--dictionary-dir", metavar="DIR",
                   help="dictionary: folder of the FreeDict files (default translation."
                        "dictionary_dir)")
    t.add_argument("--model", help="hf: local folder (or hub id) of a seq2seq model")
    t.add_argument("--translations", metavar="FILE",
                   help="file: your translations, JSONL or TSV")
    cache = t.add_mutually_exclusive_group()
    cache.add_argument("--cache", help="apertium/hf: translation cache (SQLite; default "
                                       "translation.cache_path)")
    cache.add_argument("--no-cache", action="store_true",
                       help="apertium/hf: do not read or write the cache")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run_translate)

    d = sub.add_parser("delete", help="delete a project, its data, runs and checkpoints")
    d.add_argument("name")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    d.set_defaults(func=run_delete)

    from concner.commands import project_imports

    project_imports.add_actions(sub)


def run_create(args) -> int:
    import tomllib

    from concner.errors import ConfigError

    config = config_from_args(args)
    overrides = {}
    if args.training_config:
        try:
            with open(args.training_config, "rb") as fh:
                overrides = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{args.training_config}: cannot read TOML: {exc}") from None
        from concner.config import config_from_dict

        config_from_dict(overrides, env={})  # validate now, not at the first retrain
    labels = args.labels.split(",") if args.labels else list(config.data.entity_types)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    project = open_store(config).create_project(
        args.name, source_lang=args.source, target_langs=targets,
        entity_types=[x.strip() for x in labels], encoder=args.encoder or config.model.encoder,
        training_config=overrides)
    print(f"created project {project.name!r} (id {project.id}): {project.source_lang} -> "
          f"{', '.join(project.target_langs)}, labels {', '.join(labels)}")
    return 0


def run_import(args) -> int:
    from concner import corpus
    from concner.labels import LabelSchema

    config = config_from_args(args)
    store = open_store(config)
    project = store.get_project(args.name)
    schema = LabelSchema.from_dict(project.label_schema)
    fmt = args.fmt
    if fmt == "text":
        if not args.lang:
            from concner.errors import ConfigError
            raise ConfigError("--lang is needed for plain text")
        sentences = corpus.read_text_lines(args.file, args.lang)
    else:
        sentences = corpus.read_any(args.file, args.lang, fmt=fmt, schema=schema,
                                    repair_iob=args.repair_iob)
    report = store.import_sentences(args.name, sentences, role=args.role, split=args.split,
                                    author=args.author, backend=args.backend,
                                    source_name=os.path.basename(args.file))
    print(f"imported into {args.name!r} ({args.role}/{args.split}): {report.summary()}"
          + (f" as import {report.batch_id} (undo: concner project unimport {args.name} "
             f"{report.batch_id})" if report.batch_id is not None else ""))
    return 0


def run_delete(args) -> int:
    from concner.jobs.registry import ModelRegistry

    config = config_from_args(args)
    store = open_store(config)
    registry = ModelRegistry.from_config(store, config)
    name = args.name
    folder = registry.project_dir(name)  # also: an unknown project ends here
    if not args.yes:
        counts = store.counts(name)
        sentences = sum(row["sentences"] for row in counts["sentences"])
        print(f"Project {name!r} will be deleted for good: {sentences} sentences, "
              f"{counts['annotations']} label versions, "
              f"{sum(counts['translation_links'].values())} translation links, its runs, "
              f"metrics, predictions, model versions and checkpoints ({folder}).")
        try:
            answer = input(f"Type the project name ({name}) to delete it: ")
        except EOFError:
            answer = ""
        if answer.strip() != name:
            print(f"Not deleted: the answer was not {name!r} (pass --yes to skip the question).",
                  file=sys.stderr)
            return 1
    deleted = registry.delete_project(name)
    names = {"annotations": "label versions", "sync_state": "sync states"}
    order = ["sentences", "annotations", "translation_links", "runs", "metrics",
             "model_versions", "predictions"]
    rows = ", ".join(f"{deleted[t]} {names.get(t, t.replace('_', ' '))}"
                     for t in order + sorted(set(deleted) - set(order))
                     if deleted[t] and t not in ("projects", "retrain_locks",
                                                 "checkpoint_folders"))
    print(f"deleted project {name!r}: {rows or 'no rows besides the project'}; "
          + (f"checkpoint folder {folder} removed" if deleted["checkpoint_folders"]
             else "it had no checkpoint folder"))
    return 0
