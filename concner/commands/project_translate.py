"""``concner project translate``: translate a project's labelled source sentences here and
now (a recorded run, the job the worker runs for the app), with a progress bar; Ctrl-C
cancels and imports nothing."""

from __future__ import annotations

import os
import sys
from typing import Self

from concner.commands.common import config_from_args, open_store

#: ``concner project translate`` flag of each backend option
TRANSLATE_FLAGS = {"pair": "--pair", "share": "--share", "seed": "--seed",
                   "directory": "--dictionary-dir", "model": "--model",
                   "translations": "--translations", "cache": "--cache/--no-cache"}


def translate_options(args) -> dict:
    """The backend options the flags give; a flag the backend does not use is an error."""
    from concner.errors import ConfigError
    from concner.translation.requests import OPTIONS

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

    config = config_from_args(args)
    store = open_store(config)
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
