"""``concner argilla up | down | status``: the local Argilla stack (see concner.argilla.launcher)."""

from __future__ import annotations

import argparse

from concner.argilla.launcher import LocalArgilla
from concner.argilla.stack_status import StackStatus
from concner.config import load_config


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "argilla", help="start, stop or inspect a local Argilla server (no Docker needed)",
        description="A real Argilla 2.8 server for annotators on this machine: argilla-server in "
                    "its own virtualenv, Redis, the noida-db search emulator and SQLite, all on "
                    "127.0.0.1, data in --folder (services.argilla_data_dir).")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--config", help="TOML config file (services.argilla_* keys)")
    parser.add_argument("--folder", help="data folder (default: services.argilla_data_dir)")
    parser.add_argument("--show-secrets", action="store_true",
                        help="with `up`, print the API key too (it and the password are always "
                             "in <folder>/credentials.json, mode 0600)")
    parser.set_defaults(func=run)


def _print(status: StackStatus, *, secrets: str) -> None:
    """``secrets``: ``none``, ``password`` (what `up` shows to log in) or ``all``."""
    for part in status.parts:
        pid = f" (pid {part.pid})" if part.pid else ""
        print(f"  {part.name:<7} {part.detail}{pid}")
    if not status.answering:
        return
    print(f"Argilla: {status.url}")
    if secrets != "none" and status.password:
        print(f"  log in as {status.username} with password {status.password}")
        print(f"  API key: {status.api_key}" if secrets == "all" else
              f"  API key: in {status.folder / 'credentials.json'} (--show-secrets prints it)")
    else:
        print(f"  log in as {status.username}; password and API key in "
              f"{status.folder / 'credentials.json'}")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    stack = LocalArgilla.from_config(config.services, args.folder)
    if args.action == "up":
        status = stack.up()
        print("already running" if status.already_running else "started", f"({stack.folder})")
        _print(status, secrets="all" if args.show_secrets else "password")
        return 0
    if args.action == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        return 0
    status = stack.status()
    _print(status, secrets="none")
    return 0 if status.all_running else 1
