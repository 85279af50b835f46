"""The ``translate`` job: machine-translate a project's labelled source sentences into one
target language and import the projected pairs.

The run row carries the request (``config = {"backend", "target_lang", "options"}``, see
:func:`concner.jobs.queue.request_translate`). The job translates only the sources without a
usable translation into that language (the translation cache makes a re-run cheap for the
Apertium and seq2seq backends), writes ``progress = {"stage": "translate", "step": done,
"total": n}`` and honours cancel between chunks, then imports every pair in ONE
transaction (:meth:`concner.store.Store.import_translation_pairs`): a cancelled or failed
run imports nothing. A run interrupted by the worker's shutdown is re-queued as a new run
(the next worker's start-up tick enqueues it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from concner.config import Config
from concner.errors import ConfigError
from concner.translation.base import Translator, status_counts

BACKENDS = ("apertium", "dictionary", "hf", "file")
#: options each backend accepts (anything else is a mistake the user should hear about)
OPTIONS = {
    "apertium": {"pair", "cache"},
    "dictionary": {"share", "seed", "directory"},
    "hf": {"model", "cache"},
    "file": {"translations"},
}


def check_request(backend: str, source_lang: str, target_lang: str,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a request without loading anything (the app calls this before queueing);
    returns the options with the Apertium pair filled in. Raises :class:`ConfigError`."""
    from concner.translation.langcodes import iso3, split_pair

    options = dict(options or {})
    if backend not in BACKENDS:
        raise ConfigError(f"translation backend must be one of {', '.join(BACKENDS)}, "
                          f"got {backend!r}")
    unknown = sorted(set(options) - OPTIONS[backend])
    if unknown:
        raise ConfigError(f"the {backend} backend does not take {', '.join(unknown)}; it takes "
                          f"{', '.join(sorted(OPTIONS[backend]))}")
    if backend == "apertium":
        options.setdefault("pair", f"{iso3(source_lang)}-{iso3(target_lang)}")
        if split_pair(options["pair"])[1] != target_lang:
            raise ConfigError(f"Apertium pair {options['pair']} does not translate into "
                              f"{target_lang!r}")
    share = options.get("share")
    if share is not None and not 0.0 <= float(share) <= 1.0:
        raise ConfigError(f"dictionary share must be in [0, 1], got {share}")
    if backend == "hf" and not options.get("model"):
        raise ConfigError("the hf backend needs model=<hub id or local folder>")
    if backend == "file" and not options.get("translations"):
        raise ConfigError("the file backend needs translations=<your JSONL or TSV file>")
    return _check_paths(backend, options)


def _check_paths(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """Local files and folders the request names must exist (checked here, so a typo is
    reported before a run is queued or a model is loaded); they are made absolute, so the
    stored request means the same to a worker started elsewhere."""
    if backend == "file":
        path = Path(str(options["translations"])).expanduser()
        if not path.is_file():
            raise ConfigError(f"translations file {options['translations']} does not exist; "
                              "give the path of your JSONL or TSV translations")
        options["translations"] = str(path.resolve())
    if backend == "dictionary" and options.get("directory"):
        path = Path(str(options["directory"])).expanduser()
        if not path.is_dir():
            raise ConfigError(f"dictionary folder {options['directory']} does not exist; give "
                              "the folder with the freedict-*.index files (default "
                              "translation.dictionary_dir)")
        options["directory"] = str(path.resolve())
    if backend == "hf":
        model = str(options["model"])
        path = Path(model).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise ConfigError(f"{model} is not a model folder (no config.json in it); give "
                                  "a folder a seq2seq model was saved to, or a hub id")
            options["model"] = str(path.resolve())
        elif path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
            raise ConfigError(f"model folder {model} does not exist; give the folder of a "
                              "saved seq2seq model (e.g. opus-mt-en-de), or a hub id")
    return options


def check_project_request(store, name: str, backend: str, target_lang: str,
                          options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """:func:`check_request` for project ``name`` (which must translate into
    ``target_lang``); returns the project and the checked options."""
    project = store.get_project(name)
    if target_lang not in project.target_langs:
        raise ConfigError(f"project {name!r} translates into {', '.join(project.target_langs)}, "
                          f"not {target_lang!r}")
    return project, check_request(backend, project.source_lang, target_lang, options)


def make_translator(config: Config, backend: str, source_lang: str, target_lang: str,
                    options: dict[str, Any] | None = None) -> Translator:
    """The backend object for one request (loads the engine, opens the cache)."""
    options = check_request(backend, source_lang, target_lang, options)
    tc = config.translation
    cache = None
    if backend in ("apertium", "hf") and options.get("cache", True):
        from concner.translation.cache import TranslationCache

        cache = TranslationCache(options["cache"] if isinstance(options.get("cache"), str)
                                 else tc.cache_path)
    if backend == "apertium":
        from concner.translation.apertium import ApertiumTranslator

        return ApertiumTranslator(options["pair"], config=tc, cache=cache)
    if backend == "dictionary":
        from concner.translation.dictionary import DictionaryTranslator

        return DictionaryTranslator(source_lang, config=tc, share=options.get("share"),
                                    seed=options.get("seed"), directory=options.get("directory"))
    if backend == "hf":
        from concner.translation.hf import HFTranslator

        return HFTranslator(options["model"], source_lang=source_lang, config=tc, cache=cache)
    from concner.translation.file import FileTranslator

    return FileTranslator(options["translations"])


def run_translate(ctx, name: str, run_id: int, chunk: int = 200, *,
                  translator: Translator | None = None,
                  on_progress: Callable[[dict], None] | None = None) -> str:
    """Run queued translate run ``run_id`` of project ``name`` (see the module doc); returns
    the final status, or ``"skipped"`` when the run is no longer queued.

    ``translator``: one already made for the run's request (else it is made from the
    request); ``on_progress(state)`` sees every progress update before it is written (it
    may raise :class:`concner.errors.JobCancelled` to stop the run)."""
    from concner.jobs.context import LOG_TAIL, RunProgress, job_outcome

    class EchoedProgress(RunProgress):
        def write(self, force: bool = False) -> None:
            if on_progress is not None:
                on_progress(dict(self.state))
            super().write(force)

    store = ctx.store
    if not store.start_run(run_id, ctx.owner):
        return "skipped"
    progress = EchoedProgress(ctx, run_id)

    def requeue() -> str:
        request = store.get_run(run_id).config
        follow, _ = store.request_run(name, kind="translate", reason="shutdown", config=request)
        return f"interrupted: the worker shut down; re-queued as run {follow}"

    with job_outcome(ctx, run_id, on_shutdown=requeue) as outcome:
        request = store.get_run(run_id).config or {}
        backend, target = request.get("backend"), request.get("target_lang")
        if not backend or not target:
            raise ConfigError(f"run {run_id} does not say which backend and target language to "
                              "use; queue it with tasks.request_translate")
        if translator is None:
            project = store.get_project(name)
            translator = make_translator(ctx.config, backend, project.source_lang, target,
                                         request.get("options"))
        if backend == "file":  # the file covers every source (by id or by order): one call
            todo = store.untranslated_sources(name, target, backend, all_labelled=True)
            chunk = max(len(todo), 1)
            progress.log(f"reading {target} translations of {len(todo)} labelled source "
                         "sentences from the file (already translated ones are kept)")
        else:
            todo = store.untranslated_sources(name, target, backend)
            progress.log(f"{len(todo)} labelled source sentences need a {target} translation "
                         f"({backend})")
        progress.stage("translate", total=len(todo))
        pairs = []
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]

            def report(done: int, _total: int, start: int = start) -> None:
                progress.state.update(step=start + done)
                progress.write()

            pairs += translator.translate(part, target, progress=report)
            progress.state.update(step=start + len(part))
            progress.write(force=True)  # cancel is honoured here, before anything is stored
        progress.stage("import", total=len(pairs))
        imported = store.import_translation_pairs(name, pairs, backend=backend,
                                                  target_lang=target)
        counts = status_counts(pairs)
        line = (f"imported {imported.sentences} translations into {target}; projection "
                + ", ".join(f"{k} {v}" for k, v in counts.items()))
        progress.state["log"] = (progress.state["log"] + [line])[-LOG_TAIL:]
        # the pairs are committed: a cancel arriving now no longer applies
        progress.state.update(stage="done", step=len(pairs), total=len(pairs), counts=counts,
                              imported=imported.sentences)
        store.update_progress(run_id, dict(progress.state))
        outcome.status = "succeeded"
    return outcome.status


def translate_now(store, config: Config, name: str, *, backend: str, target_lang: str,
                  options: dict[str, Any] | None = None, owner: str = "cli",
                  on_progress: Callable[[dict], None] | None = None):
    """Translate project ``name``'s labelled sources into ``target_lang`` in this process,
    as a recorded ``translate`` run (the same job the worker runs); returns the finished run.

    Everything that can be checked is checked before the run exists: the project and its
    target language, the backend and its options, the files it names, and the backend
    itself (a seq2seq model is loaded, a translations file opened)."""
    from concner.jobs.context import JobContext
    from concner.jobs.registry import ModelRegistry

    project, options = check_project_request(store, name, backend, target_lang, options)
    translator = make_translator(config, backend, project.source_lang, target_lang, options)
    run_id, _ = store.request_run(name, kind="translate", config={
        "backend": backend, "target_lang": target_lang, "options": options})
    ctx = JobContext(store, ModelRegistry.from_config(store, config), config, owner)
    run_translate(ctx, name, run_id, translator=translator, on_progress=on_progress)
    return store.get_run(run_id)
