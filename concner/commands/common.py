"""What several commands share: the config and the store a ``concner project`` action
reads, and writing an output file whole or not at all.

No ``register`` here: :mod:`concner.cli` makes a command of every module that has one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def config_from_args(args):
    """The config, from ``--config`` when given (it also becomes ``CONCNER_CONFIG`` for what
    this process starts), else from ``CONCNER_CONFIG`` or the defaults."""
    if args.config:
        os.environ["CONCNER_CONFIG"] = os.path.abspath(args.config)
    from concner.config import load_config

    return load_config(os.environ.get("CONCNER_CONFIG") or None)


def open_store(config):
    """The project store at ``services.database_url``."""
    from concner.store import Store

    return Store(config.services.database_url)


def write_atomic(path: str, lines) -> None:
    """Write ``lines`` (each without its newline) to ``path`` through a temporary file in the
    same folder, so a reader sees the old file or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in lines)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
