"""Sync hooks: what the worker's ``sync`` job calls, and what a hook reports.

A sync module (named in ``services.sync_modules``, e.g. :mod:`concner.argilla.sync`)
exposes ``register_sync_hooks(registry)``, which registers its hooks on the
:class:`SyncHooks` it is given; the worker's loader
(:func:`concner.jobs.queue.load_sync_modules`) imports the module and calls it. This
module imports no job and no queue, so a sync module can use it freely.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from concner.config import Config
from concner.errors import ConcnerError, ConfigError

#: the ``sync_state`` dataset that records "no sync source is configured"
NO_SYNC_DATASET = "(none)"
#: what a sync module must define for the loader to call
REGISTER_FUNCTION = "register_sync_hooks"


@dataclass(frozen=True)
class SyncReport:
    """What one sync hook did for one project (recorded in ``sync_state``)."""

    dataset: str
    n_new: int = 0
    cursor: str | None = None
    message: str = ""
    #: ask for another sync this many seconds later: the source changed so recently that
    #: some of it may not have been readable yet (None: nothing pending)
    recheck_after: float | None = None


#: ``hook(store, project_name, config) -> list[SyncReport]``
SyncHook = Callable[..., list]


class SyncHooks:
    """Named sync hooks; registering a name again replaces its hook."""

    def __init__(self, hooks: Mapping[str, SyncHook] | None = None):
        self._hooks: dict[str, SyncHook] = dict(hooks or {})

    def register(self, name: str, hook: SyncHook) -> None:
        self._hooks[name] = hook

    def names(self) -> list[str]:
        return sorted(self._hooks)

    def items(self) -> list[tuple[str, SyncHook]]:
        """``(name, hook)`` pairs, by name (the order a sync calls them in)."""
        return sorted(self._hooks.items())

    def __bool__(self) -> bool:
        return bool(self._hooks)


def run_sync(store, project: str, config: Config, hooks: SyncHooks) -> list[dict]:
    """Call every hook of ``hooks`` for ``project`` and record its outcome (without any:
    that no sync source is configured)."""
    if not hooks:
        store.set_sync_state(project, NO_SYNC_DATASET, status="unconfigured",
                             message="no sync source is configured (set services.sync_modules)")
        return []
    out = []
    for name, hook in hooks.items():
        try:
            reports = hook(store, project, config) or []
        except ConcnerError as exc:
            store.set_sync_state(project, name, status="failed", message=str(exc))
            out.append({"hook": name, "error": str(exc)})
            continue
        for rep in reports:
            store.set_sync_state(project, rep.dataset, status="ok", cursor=rep.cursor,
                                 message=rep.message or f"{rep.n_new} new labels")
            out.append({"hook": name, "dataset": rep.dataset, "n_new": rep.n_new,
                        "recheck_after": rep.recheck_after})
    return out


def recheck_delay(outcomes: list[dict]) -> float | None:
    """How long to wait before the sync that takes what :func:`run_sync`'s hooks could not
    read yet (the longest any hook asked for), or None when none asked."""
    asked = [o["recheck_after"] for o in outcomes if o.get("recheck_after") is not None]
    return max(asked) if asked else None


def load_sync_modules(config: Config, hooks: SyncHooks) -> None:
    """Import each module named in ``services.sync_modules`` and call its
    ``register_sync_hooks(registry)`` with ``hooks``. Raises :class:`ConfigError` when a
    module cannot be imported or does not define that function."""
    for name in config.services.sync_modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"services.sync_modules: cannot import {name!r}: {exc}") from exc
        register = getattr(module, REGISTER_FUNCTION, None)
        if not callable(register):
            raise ConfigError(
                f"services.sync_modules: {name!r} does not define {REGISTER_FUNCTION}(registry); "
                f"add `def {REGISTER_FUNCTION}(registry): registry.register(\"<name>\", hook)` "
                "to it, where hook(store, project, config) returns a list of "
                "concner.jobs.sync_hooks.SyncReport")
        register(hooks)
