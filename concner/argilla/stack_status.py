"""What :class:`concner.argilla.launcher.LocalArgilla` reports about a local Argilla stack:
one :class:`PartStatus` per process and the :class:`StackStatus` of the whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PartStatus", "StackStatus"]


@dataclass
class PartStatus:
    """One process of the stack: ``running`` when it runs and answers; ``detail`` says how
    it is and where it listens."""

    name: str
    running: bool
    pid: int | None
    detail: str = ""


@dataclass
class StackStatus:
    """What :meth:`LocalArgilla.status` and :meth:`LocalArgilla.up` report.

    ``api_key``/``password`` are ``None`` until the first start created them; ``repr``
    hides them so a status can be logged.
    """

    folder: Path
    url: str
    answering: bool
    parts: list[PartStatus]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    already_running: bool = False

    @property
    def all_running(self) -> bool:
        return self.answering and all(p.running for p in self.parts)
