"""The ``concner`` command: discovers sub-commands in :mod:`concner.commands`.

User errors (:class:`ConcnerError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from concner import __version__
from concner.errors import ConcnerError


def build_parser() -> argparse.ArgumentParser:
    from concner import commands

    parser = argparse.ArgumentParser(
        prog="concner",
        description="ConCNER Studio: cross-lingual NER with few labels (headless commands).",
    )
    parser.add_argument("--version", action="version", version=f"concner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"concner.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConcnerError as exc:
        print(f"concner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("concner: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
