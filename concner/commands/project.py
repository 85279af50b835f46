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

import json
import os
import sys
from typing import Self


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

    from concner.jobs.translate import BACKENDS

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


def _config(args):
    if args.config:
        os.environ["CONCNER_CONFIG"] = os.path.abspath(args.config)
    from concner.config import load_config

    return load_config(os.environ.get("CONCNER_CONFIG") or None)


def _store(config):
    from concner.store import Store

    return Store(config.services.database_url)


def run_create(args) -> int:
    import tomllib

    from concner.errors import ConfigError

    config = _config(args)
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
    project = _store(config).create_project(
        args.name, source_lang=args.source, target_langs=targets,
        entity_types=[x.strip() for x in labels], encoder=args.encoder or config.model.encoder,
        training_config=overrides)
    print(f"created project {project.name!r} (id {project.id}): {project.source_lang} -> "
          f"{', '.join(project.target_langs)}, labels {', '.join(labels)}")
    return 0


def run_import(args) -> int:
    from concner import corpus
    from concner.labels import LabelSchema

    config = _config(args)
    store = _store(config)
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


def status(store, name: str, *, worker_timeout_s: float | None = None) -> dict:
    """Everything ``status`` prints, as plain data. A worker's ``status`` is what
    :mod:`concner.jobs.liveness` makes of its heartbeat row (``running``, ``dead``, ``silent``,
    ``stopped``; the app's health block uses the same judge); ``reported`` is what the row
    itself says. ``worker_timeout_s``: ``services.lock_stale_seconds`` by default."""
    from concner.jobs import liveness

    project = store.get_project(name)
    timeout = liveness.DEFAULT_TIMEOUT_S if worker_timeout_s is None else worker_timeout_s
    runs = store.runs(name, limit=10)
    active = store.active_model_version(name)
    metrics = store.metrics(name)
    latest_run = max((m.run_id for m in metrics), default=None)
    lock = store.lock_state(name)
    return {
        "project": {"name": project.name, "source": project.source_lang,
                    "targets": project.target_langs,
                    "labels": project.label_schema["entity_types"], "encoder": project.encoder},
        "counts": store.counts(name),
        "lock": {"run_id": lock.run_id, "queued_run_id": lock.queued_run_id,
                 "heartbeat_at": lock.heartbeat_at and lock.heartbeat_at.isoformat()},
        "runs": [{"id": r.id, "kind": r.kind, "status": r.status, "reason": r.reason,
                  "label_counts": {k: v for k, v in (r.label_counts or {}).items()
                                   if k in ("source", "translated", "target")},
                  "stage": (r.progress or {}).get("stage"),
                  "step": (r.progress or {}).get("step"), "total": (r.progress or {}).get("total"),
                  "error": r.error} for r in runs],
        "active_model": None if active is None else {
            "version": active.version, "path": active.path, "mean_f1": active.mean_f1,
            "pinned": project.pinned_version_id == active.id},
        "metrics": [{"run": m.run_id, "lang": m.language, "f1": m.f1, "support": m.support}
                    for m in metrics if m.run_id == latest_run],
        "workers": [{"id": w.worker_id, "status": judged.state, "alive": judged.alive,
                     "reported": w.status, "host": w.host, "pid": w.pid,
                     "last_seen": w.last_seen.isoformat()}
                    for w in store.workers()[:5]
                    for judged in [liveness.judge(w, timeout_s=timeout)]],
    }


def run_status(args) -> int:
    config = _config(args)
    from concner.jobs.readiness import project_readiness

    store = _store(config)
    info = status(store, args.name, worker_timeout_s=config.services.lock_stale_seconds)
    readiness = project_readiness(store, args.name, config)
    info["auto_retrain"] = store.get_project(args.name).auto_retrain
    info["readiness"] = {"ready": readiness.ready, "requirements": [
        {"key": r.key, "title": r.title, "met": r.met, "have": r.have, "todo": r.todo}
        for r in readiness.requirements]}
    if args.json:
        json.dump(info, sys.stdout, indent=2, default=str)
        print()
        return 0
    p = info["project"]
    print(f"project {p['name']}: {p['source']} -> {', '.join(p['targets'])}; labels "
          f"{', '.join(p['labels'])}; encoder {p['encoder']}")
    for row in info["counts"]["sentences"]:
        print(f"  {row['role']:<11} {row['split']:<5} {row['lang']:<4} {row['sentences']:>7} "
              f"sentences, {row['labelled']:>7} labelled")
    print(f"  annotation versions: {info['counts']['annotations']}; translation links: "
          f"{info['counts']['translation_links'] or 'none'}")
    print_readiness(readiness, info["auto_retrain"])
    am = info["active_model"]
    if am is None:
        print("active model: none")
    else:
        f1 = "n/a" if am["mean_f1"] is None else f"{100 * am['mean_f1']:.2f}"
        pinned = ", pinned: concner model unpin to return to the promotion rule" \
            if am["pinned"] else ""
        print(f"active model: v{am['version']} (mean dev F1 {f1}{pinned}) at {am['path']}")
    for m in info["metrics"]:
        print(f"  run {m['run']} {m['lang']}: F1 {100 * m['f1']:.2f} (support {m['support']})")
    for r in info["runs"]:
        where = f" {r['stage']} {r['step']}/{r['total']}" if r["status"] == "running" else ""
        counts = ", ".join(f"{k} {v}" for k, v in r["label_counts"].items())
        print(f"run {r['id']} {r['kind']} {r['status']}{where} ({r['reason']})"
              + (f" labels: {counts}" if counts else "")
              + (f"; error: {r['error'].splitlines()[0]}" if r["error"] else ""))
    for w in info["workers"]:
        said = "" if w["reported"] == w["status"] else f" (its row says {w['reported']})"
        print(f"worker {w['id']}: {w['status']}{said}, last seen {w['last_seen']}")
    return 0


def next_to_ask(store, name: str, side: str = "target", n: int = 20,
                lang: str | None = None) -> list:
    """The active model's unlabelled ``side`` sentences in the stored active-learning order
    (:class:`concner.ui.review.ReviewRow`, at most ``n``).

    Raises :class:`ConcnerError` when there is no active model or it has not predicted the
    pool yet (saying what to run)."""
    from concner.errors import ConcnerError
    from concner.ui.review import filter_rows, review_rows, sort_rows

    store.get_project(name)  # an unknown project is a clear error
    mv = store.active_model_version(name)
    if mv is None:
        raise ConcnerError(f"project {name!r} has no active model yet: train one "
                           f"(concner project retrain {name}, with a worker running)")
    predictions = store.predictions(mv.id)
    if not predictions:
        raise ConcnerError(f"the active model v{mv.version} of {name!r} has not predicted the "
                           "pool yet: the worker does it after each promotion (is a worker "
                           "running? concner worker)")
    rows = review_rows(store.sentences(name, role=side), [(mv.version, predictions)])
    rows = filter_rows(rows, langs=[lang] if lang else None, status="unlabelled")
    return sort_rows(rows, "strategy")[:n]


def run_next(args) -> int:
    from concner.errors import ConcnerError

    config = _config(args)
    n = config.active.batch_size if args.n is None else args.n
    if n < 1:
        raise ConcnerError("--n must be >= 1")
    rows = next_to_ask(_store(config), args.name, args.side, n, args.lang)
    for k, r in enumerate(rows, 1):
        if args.json:
            print(json.dumps({"rank": k, "id": r.sentence.id, "lang": r.sentence.lang,
                              "text": r.sentence.text, "ask_order": r.al_rank,
                              "strategy": r.al_strategy,
                              "score": r.al_score, "uncertainty": r.uncertainty,
                              "spans": [{"start": sp.start, "end": sp.end, "label": sp.label,
                                         "score": sp.score} for sp in r.spans]},
                             ensure_ascii=False))
        else:
            score = "" if r.al_score is None else f" {r.al_strategy} {r.al_score:.3f}"
            print(f"{k:>4}  {r.sentence.id}  {r.sentence.lang}{score}  {r.sentence.text}")
    if not rows:
        print(f"nothing left to ask on the {args.side} side"
              + (f" in {args.lang}" if args.lang else ""), file=sys.stderr)
    return 0


def run_retrain(args) -> int:
    from concner.jobs import queue as tasks

    _config(args)
    store = _store(tasks.CONFIG)
    run_id, created = tasks.request_retrain(store, args.name)
    warn_not_ready(store, args.name, tasks.CONFIG)
    print(f"retrain run {run_id} {'queued' if created else 'already queued (coalesced)'}")
    return 0


def print_readiness(readiness, auto_on: bool, file=None) -> None:
    """The readiness checklist (``concner project status`` and ``auto-retrain``)."""
    state = "on" if auto_on else "off"
    when = ("the worker retrains when new labels arrive" if readiness.ready
            else "waiting until the project is ready") if auto_on else "retrain on demand only"
    print(f"automatic retraining: {state} ({when})", file=file)
    for req in readiness.requirements:
        print(f"  [{'x' if req.met else ' '}] {req.title}: {req.have}", file=file)
        if not req.met:
            print(f"      next: {req.cli}", file=file)


def run_auto_retrain(args) -> int:
    from concner.jobs.readiness import project_readiness

    config = _config(args)
    store = _store(config)
    if args.state is not None:
        store.set_auto_retrain(args.name, args.state == "on")
    print_readiness(project_readiness(store, args.name, config),
                    store.get_project(args.name).auto_retrain)
    return 0


def warn_not_ready(store, name: str, config) -> None:
    """On stderr: what is missing when an on-demand retrain is asked of a project that is
    not ready (it runs anyway)."""
    from concner.jobs.readiness import project_readiness

    warning = project_readiness(store, name, config).on_demand_warning("cli")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def run_evaluate(args) -> int:
    from concner.errors import ConcnerError
    from concner.jobs import queue as tasks
    from concner.jobs.registry import ModelRegistry

    _config(args)
    store = _store(tasks.CONFIG)
    dev = store.dev_set(args.name)
    if dev.empty:
        raise ConcnerError(f"project {args.name!r} has no gold dev sentences to evaluate on; "
                           f"import some: concner project import {args.name} FILE --role "
                           "target --split dev --lang LANG")
    mv_id, what = None, "every stored version"
    if args.version is not None:
        mv_id = ModelRegistry.from_config(store, tasks.CONFIG).find_version(
            args.name, args.version).id
        what = f"v{args.version}"
    elif not store.model_versions(args.name):
        raise ConcnerError(f"project {args.name!r} has no model version yet: train one "
                           f"(concner retrain {args.name}, with a worker running)")
    run_id = tasks.request_evaluate(store, args.name, mv_id)
    counts = ", ".join(f"{n} {lang}" for lang, n in sorted(dev.counts.items()))
    print(f"evaluation of {what} on the current dev sets ({counts}): run {run_id} queued; "
          f"follow it with: concner project status {args.name}")
    return 0


def run_cancel(args) -> int:
    state = _store(_config(args)).cancel_run(args.run_id)
    print(f"run {args.run_id}: {state}" + (" (stops at its next step)" if state == "running" else ""))
    return 0


#: ``concner project translate`` flag of each backend option
TRANSLATE_FLAGS = {"pair": "--pair", "share": "--share", "seed": "--seed",
                   "directory": "--dictionary-dir", "model": "--model",
                   "translations": "--translations", "cache": "--cache/--no-cache"}


def translate_options(args) -> dict:
    """The backend options the flags give; a flag the backend does not use is an error."""
    from concner.errors import ConfigError
    from concner.jobs.translate import OPTIONS

    given = {"pair": args.pair, "share": args.share, "seed": args.seed,
             "directory": args.dictionary_dir, "model": args.model,
             "translations": args.translations,
             "cache": False if args.no_cache else args.cache}
    options = {k: v for k, v in given.items() if v is not None}
    unused = [TRANSLATE_FLAGS[k] for k in options if k not in OPTIONS[args.backend]]
    if unused:
        takes = [TRANSLATE_FLAGS[k] for k in sorted(OPTIONS[args.backend])]
        raise ConfigError(f"--backend {args.backend} does not use {', '.join(unused)}; it takes "
                          f"{', '.join(takes)}")
    return options


class _Progress:
    """Prints a translate run's progress: its log lines, and a bar over the sentences."""

    def __init__(self, target: str, bar: bool):
        self.target, self.show_bar = target, bar
        self.bar = None
        self.logged = 0
        self.interrupted = False

    def __call__(self, state: dict) -> None:
        from tqdm import tqdm

        from concner.errors import JobCancelled

        if self.interrupted:
            raise JobCancelled("interrupted (Ctrl-C); nothing was imported")
        log = state.get("log") or []
        for line in log[self.logged:]:
            tqdm.write(f"{self.target}: {line}", file=sys.stderr)
        self.logged = len(log)
        if not self.show_bar or state.get("stage") != "translate" or not state.get("total"):
            return
        if self.bar is None:
            self.bar = tqdm(total=state["total"], desc=f"-> {self.target}", unit="sent",
                            file=sys.stderr)
        self.bar.update(state.get("step", 0) - self.bar.n)

    def __enter__(self) -> Self:
        """While the run lasts, Ctrl-C cancels it at its next progress update (a second
        Ctrl-C stops at once)."""
        import signal

        def interrupt(signum, frame):
            self.interrupted = True
            signal.signal(signal.SIGINT, self._previous)

        self._previous = signal.signal(signal.SIGINT, interrupt) or signal.SIG_DFL
        return self

    def __exit__(self, *exc) -> None:
        import signal

        signal.signal(signal.SIGINT, self._previous)
        if self.bar is not None:
            self.bar.close()


def run_translate(args) -> int:
    import time

    from concner.errors import ConcnerError
    from concner.jobs.translate import translate_now

    config = _config(args)
    store = _store(config)
    project = store.get_project(args.name)
    options = translate_options(args)
    targets = ([t.strip() for t in args.target.split(",") if t.strip()] if args.target
               else list(project.target_langs))
    if len(targets) > 1 and (args.pair or args.backend == "file"):
        from concner.errors import ConfigError

        what = f"--pair {args.pair}" if args.pair else f"--translations {args.translations}"
        raise ConfigError(f"{what} is for one target language, but this would translate into "
                          f"{', '.join(targets)}; pick one with --target")
    for target in targets:
        started = time.perf_counter()
        with _Progress(target, bar=not args.no_progress) as progress:
            run = translate_now(store, config, args.name, backend=args.backend,
                                target_lang=target, options=options,
                                owner=f"cli-{os.getpid()}", on_progress=progress)
        seconds = time.perf_counter() - started
        state = run.progress or {}
        if run.status == "succeeded":
            counts = state.get("counts") or {}
            if not state.get("total"):
                print(f"{target}: nothing to translate: every labelled source sentence has a "
                      f"usable {target} translation (run {run.id})")
                continue
            print(f"{target}: run {run.id} translated {state['total']} source sentences with "
                  f"{args.backend} in {seconds:.1f} s; projection ok {counts.get('ok', 0)}, "
                  f"repaired {counts.get('repaired', 0)}, failed {counts.get('failed', 0)}; "
                  f"imported {state.get('imported', 0)} translations")
        elif run.status == "cancelled":
            print(f"{target}: run {run.id} cancelled ({run.error}); nothing imported",
                  file=sys.stderr)
            return 130
        elif run.status == "failed":
            raise ConcnerError(f"{target}: translate run {run.id} failed, nothing imported: "
                               f"{run.error}")
        else:
            print(f"{target}: run {run.id} was taken by a running worker (status {run.status});"
                  f" follow it with: concner project status {args.name}")
    return 0


def run_delete(args) -> int:
    from concner.jobs.registry import ModelRegistry

    config = _config(args)
    store = _store(config)
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
