"""Sub-commands of the ``concner`` command.

Each module here defines ``register(subparsers)``, adding its sub-command(s) with
``set_defaults(func=handler)``; ``handler(args) -> int`` returns the exit code. Modules are
discovered automatically, so a new command is one new file.
"""
