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
from typing import Any

from concner.config import Config
from concner.errors import ConfigError
from concner.translation.base import Translator, status_counts
from concner.translation.requests import check_project_request, make_translator


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
