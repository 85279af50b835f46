"""``concner project retrain``, ``evaluate`` and ``cancel``: queue a run for the worker, or
cancel one."""

from __future__ import annotations

from concner.commands.common import config_from_args, open_store
from concner.commands.project_status import warn_not_ready


def run_retrain(args) -> int:
    from concner.jobs import queue as tasks

    config_from_args(args)
    store = open_store(tasks.config())
    run_id, created = tasks.request_retrain(store, args.name)
    warn_not_ready(store, args.name, tasks.config())
    print(f"retrain run {run_id} {'queued' if created else 'already queued (coalesced)'}")
    return 0


def run_evaluate(args) -> int:
    from concner.errors import ConcnerError
    from concner.jobs import queue as tasks
    from concner.jobs.registry import ModelRegistry

    config_from_args(args)
    store = open_store(tasks.config())
    dev = store.dev_set(args.name)
    if dev.empty:
        raise ConcnerError(f"project {args.name!r} has no gold dev sentences to evaluate on; "
                           f"import some: concner project import {args.name} FILE --role "
                           "target --split dev --lang LANG")
    mv_id, what = None, "every stored version"
    if args.version is not None:
        mv_id = ModelRegistry.from_config(store, tasks.config()).find_version(
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
    state = open_store(config_from_args(args)).cancel_run(args.run_id)
    print(f"run {args.run_id}: {state}" + (" (stops at its next step)" if state == "running" else ""))
    return 0
