"""Typed errors for ConCNER Studio.

Every error a user can cause is a :class:`ConcnerError` child whose message says
what to fix. The command line turns them into a one-line message and exit code 2.
"""

from __future__ import annotations


class ConcnerError(Exception):
    """Base class of all errors a user can cause (bad input, bad config, down services)."""


class ConfigError(ConcnerError):
    """A configuration value is missing, of the wrong type or out of range."""


class LabelSchemaError(ConcnerError):
    """A label is unknown to the schema, or a tag sequence is not valid IOB2."""


class DataFormatError(ConcnerError):
    """A data file (or upload) is malformed.

    Carries the file name and 1-based line number when they are known, and the
    message says what to do about it.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = ""
        if path is not None and line is not None:
            where = f"{path}:{line}: "
        elif path is not None:
            where = f"{path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(f"{where}{message}")


class ServiceUnavailable(ConcnerError):
    """An outside service (Argilla, the queue, the database, an MT engine) cannot be reached."""


class ModelError(ConcnerError):
    """A model folder is missing, incomplete or incompatible."""


class JobCancelled(ConcnerError):
    """A running job was asked to stop (raised from a progress callback)."""
