"""Typed errors for ConCNER Studio, all defined here.

Every error a user can cause is a :class:`ConcnerError` child whose message says
what to fix. The command line turns them into a one-line message and exit code 2.

- :class:`ConfigError`: a setting is missing, of the wrong type or out of range
- :class:`LabelSchemaError`: a label unknown to the schema, or tags that are not IOB2
- :class:`DataFormatError`: a malformed data file or upload (file and line when known)
- :class:`ImportBatchNotFound`: an import batch id the project does not have
- :class:`ProjectNotFound`: a project name the store does not know
- :class:`StoreConflict`: a write that would break a uniqueness rule, or is refused
- :class:`ServiceUnavailable`: Argilla, the queue, the database or an MT engine is down;
  :class:`DependencyDown`: a part waits for a part it needs
- :class:`ModelError`: a model folder is missing, incomplete or incompatible;
  :class:`ModelVersionError`: a version that cannot be pinned or rolled back to
- :class:`JobCancelled`: a running job was asked to stop
- :class:`ShardFailed`: a shard of a sharded run failed on every attempt it was allowed
- :class:`MarkerError`: entity markers in an MT output cannot be read (internal: the
  translation becomes a failed projection)
"""

from __future__ import annotations

from collections.abc import Mapping

#: How the command line names the control that fixes an error with a ``hint`` key. Other
#: places render their own names (the app: :data:`concner.ui.uploads.APP_HINTS`; a
#: sub-command without the flag: its own table), so a hint never names a control that is
#: not where it is shown.
CLI_HINTS: dict[str, str] = {
    "repair_iob": "fix the file, or pass --repair-iob to turn stray I- tags into B-",
}
#: what a hint says where no control for it exists
PLAIN_HINTS: dict[str, str] = {
    "repair_iob": "fix the file (stray I- tags: an I- tag that does not continue an entity)",
}


class ConcnerError(Exception):
    """Base class of all errors a user can cause (bad input, bad config, down services)."""

    #: key of the control that fixes this error (see :data:`CLI_HINTS`), or None
    hint: str | None = None


class ConfigError(ConcnerError):
    """A configuration value is missing, of the wrong type or out of range."""


class LabelSchemaError(ConcnerError):
    """A label is unknown to the schema, or a tag sequence is not valid IOB2."""


class MarkerError(ConcnerError):
    """The markers in an engine output cannot be read (internal; becomes ``failed``)."""


class DataFormatError(ConcnerError):
    """A data file (or upload) is malformed.

    Carries the file name and 1-based line number when they are known, and the
    message says what to do about it. With a ``hint`` key the "what to do" part names the
    control of the place that shows it: the command line's flag by default
    (:data:`CLI_HINTS`), another place's with :meth:`for_controls`.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None, controls: Mapping[str, str] | None = None):
        self.path = path
        self.line = line
        self.reason = message
        self.hint = hint
        self.controls = CLI_HINTS if controls is None else controls
        super().__init__(f"{self.where()}{self.explain()}")

    def where(self) -> str:
        if self.path is not None and self.line is not None:
            return f"{self.path}:{self.line}: "
        if self.path is not None:
            return f"{self.path}: "
        if self.line is not None:
            return f"line {self.line}: "
        return ""

    def explain(self, controls: Mapping[str, str] | None = None) -> str:
        """The reason and, for a hinted error, the fix named with ``controls`` (hint key ->
        phrase; default: the ones this error was made for)."""
        if self.hint is None:
            return self.reason
        controls = self.controls if controls is None else controls
        return f"{self.reason}; {controls.get(self.hint, PLAIN_HINTS.get(self.hint, ''))}" \
            .rstrip("; ")

    def for_controls(self, controls: Mapping[str, str]) -> DataFormatError:
        """The same error, its fix naming ``controls`` (raise it where they are shown)."""
        return type(self)(self.reason, path=self.path, line=self.line, hint=self.hint,
                          controls=controls)


class ImportBatchNotFound(ConcnerError):
    """An import batch id that the project does not have (see ``concner project imports``)."""


class ProjectNotFound(ConcnerError):
    """A project name that the store does not know."""


class StoreConflict(ConcnerError):
    """A write that would break a uniqueness rule (duplicate project or sentence id)."""


class ServiceUnavailable(ConcnerError):
    """An outside service (Argilla, the queue, the database, an MT engine) cannot be reached."""


class DependencyDown(ServiceUnavailable):
    """A part cannot start because a part it needs does not answer (that one must come back
    first); ``concner up`` then waits for it instead of counting a crash."""

    def __init__(self, message: str, *, part: str, needs: str):
        super().__init__(message)
        self.part, self.needs = part, needs


class ModelError(ConcnerError):
    """A model folder is missing, incomplete or incompatible."""


class ModelVersionError(ModelError):
    """A model version cannot be pinned or rolled back to (unknown, or its files were
    pruned); the message names the versions that can."""


class JobCancelled(ConcnerError):
    """A running job was asked to stop (raised from a progress callback)."""


# -- the worker's jobs (concner.jobs) ----------------------------------------------------
class WorkerShutdown(JobCancelled):
    """The worker is stopping (SIGTERM): the current run stops at the next step and is
    re-queued."""


class PlanError(ConcnerError):
    """A retrain plan cannot be made or applied (inconsistent inputs); the message says
    what does not fit."""


class StaleRun(ConcnerError):
    """A run was started by an older worker in a form this worker cannot continue (its
    shards lack what this version reads); the message says how to queue a new one."""


class ShardFailed(ConcnerError):
    """A shard of a sharded run (concner/store/shards.py) failed on every attempt it was
    allowed (:data:`concner.store.shards.MAX_ATTEMPTS`); its run fails with this error,
    which names the shard, its work kind and its last error."""

    def __init__(self, run_id: int, shard_id: int, index: int, kind: str, attempts: int,
                 last_error: str):
        self.run_id, self.shard_id, self.index, self.kind = run_id, shard_id, index, kind
        super().__init__(
            f"shard {index} (id {shard_id}, {kind}) of run {run_id} failed {attempts} times; "
            f"last: {last_error}. Fix the cause (see the worker's log), then request the run "
            "again")
