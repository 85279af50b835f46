"""What ``concner up`` supervises, and the state file the app reads.

Each supervised part (the queue worker, the app, each part of the local Argilla) has a
:class:`Part`: whether it runs, is waiting to be restarted, or was given up, how often it
was restarted, its last exit code. :class:`RestartPolicy` decides, when a part dies,
whether and when it is started again: after ``services.supervisor_backoff_s``, doubled for
each other death within ``services.supervisor_window_s`` (capped at
``services.supervisor_backoff_max_s``); a part that died more than
``services.supervisor_max_restarts`` times within the window is given up, alone.

``concner up`` writes the parts to ``<services.run_dir>/supervisor.json`` (atomically) on
every change; :func:`state_lines` turns that file into the lines the app's Overview shows.
:class:`Supervisor` is what does it: it starts the children
(:class:`concner.stack.processes.Child`), watches them and the local Argilla's parts,
restarts what dies and stops everything at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from concner.errors import DependencyDown, ServiceUnavailable
from concner.stack.processes import Child

STATE_FILE = "supervisor.json"
RUNNING, RESTARTING, GAVE_UP, STOPPED = "running", "restarting", "gave up", "stopped"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def describe_window(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class RestartPolicy:
    """``services.supervisor_*`` (defaults there, in one place): first backoff, its cap,
    deaths allowed within the window, the window in seconds."""

    backoff_s: float
    backoff_max_s: float
    max_restarts: int
    window_s: float

    @classmethod
    def from_services(cls, services) -> RestartPolicy:
        return cls(services.supervisor_backoff_s, services.supervisor_backoff_max_s,
                   services.supervisor_max_restarts, services.supervisor_window_s)

    def delay(self, deaths_in_window: int) -> float:
        """Seconds to wait before restart number ``deaths_in_window`` (1, 2, 4 ... x backoff)."""
        return min(self.backoff_s * 2 ** max(deaths_in_window - 1, 0), self.backoff_max_s)


@dataclass
class Part:
    """One supervised part. ``deaths`` holds monotonic times of its deaths in the window."""

    name: str
    log: str | None = None
    state: str = RUNNING
    pid: int | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    last_restart_at: str | None = None
    message: str = ""
    next_try: float | None = field(default=None, repr=False)
    deaths: deque = field(default_factory=deque, repr=False)

    def died(self, code: int | None, policy: RestartPolicy, now: float | None = None) -> None:
        """Record a death: either schedule a restart (:data:`RESTARTING`, ``next_try``) or
        give the part up (:data:`GAVE_UP`) when it died too often within the window."""
        now = time.monotonic() if now is None else now
        self.last_exit_code, self.pid = code, None
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > policy.window_s:
            self.deaths.popleft()
        n = len(self.deaths)
        if n > policy.max_restarts:
            self.state, self.next_try = GAVE_UP, None
            where = f": see {self.log}" if self.log else ""
            self.message = (f"{self.name} gave up after {n} crashes in "
                            f"{describe_window(policy.window_s)} (last: {describe_exit(code)})"
                            f"{where}; restart with `concner up`")
        else:
            wait = policy.delay(n)
            self.state, self.next_try = RESTARTING, now + wait
            self.message = (f"{self.name} died ({describe_exit(code)}); restarting in "
                            f"{wait:.0f} s")

    def waits_for(self, needs: str, policy: RestartPolicy, now: float | None = None) -> None:
        """It cannot start yet because ``needs`` (another part) does not answer: try again
        after the first backoff. Not a death: a part whose dependency is down is not
        crash-looping, and is not given up for it."""
        now = time.monotonic() if now is None else now
        self.state, self.next_try = RESTARTING, now + policy.backoff_s
        self.message = f"{self.name} waits for {needs} to answer before it restarts"

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.state == RESTARTING and self.next_try is not None and now >= self.next_try

    def started(self, pid: int | None, *, restart: bool = True) -> None:
        self.state, self.pid, self.next_try, self.message = RUNNING, pid, None, ""
        if restart:
            self.restarts += 1
            self.last_restart_at = datetime.now(UTC).isoformat(timespec="seconds")

    def to_dict(self) -> dict:
        return {"state": self.state, "pid": self.pid, "restarts": self.restarts,
                "last_exit_code": self.last_exit_code, "last_restart_at": self.last_restart_at,
                "log": self.log, "message": self.message}


def write_state(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a reader sees the old or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_state(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def state_path(services) -> Path:
    return Path(services.run_dir).expanduser().resolve() / STATE_FILE


def _pid_alive(pid: int) -> bool:
    from concner.jobs.liveness import pid_running

    return pid_running(pid)


def state_lines(state: dict | None) -> list[tuple[bool, str]]:
    """``(ok, text)`` lines for the app from a supervisor state: one per part that is not
    running (given up, or waiting to be restarted), and one when ``concner up`` itself is
    gone without stopping. Nothing when everything runs, or there is no state."""
    if not state:
        return []
    if state.get("status") == STOPPED:
        return []
    lines = []
    pid = state.get("pid")
    if isinstance(pid, int) and not _pid_alive(pid):
        gone = (f"`concner up` (pid {pid}) is gone: nothing restarts dead parts; "
                "restart with `concner up`")
        lines.append((False, gone))
    for name, part in (state.get("parts") or {}).items():
        if part.get("state") in (GAVE_UP, RESTARTING):
            text = part.get("message") or f"{name} {part.get('state')}"
            lines.append((False, text))
    return lines


#: how long a child is given to exit after SIGTERM before it is killed
STOP_GRACE_SECONDS = 15.0


class Supervisor:
    """The worker, the app and (when this run owns it) the local Argilla's parts: each one
    restarted on its own when it dies, under a :class:`RestartPolicy`; everything stopped
    in reverse start order by :meth:`stop_all`."""

    def __init__(self, policy: RestartPolicy, state_file: Path, *,
                 log=lambda msg: print(msg, file=sys.stderr, flush=True)):
        self.policy, self.state_file, self.log = policy, state_file, log
        self.children: dict[str, Child] = {}
        self.parts: dict[str, Part] = {}
        self.launcher = None
        self.argilla_folder: str | None = None
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.status = "starting"

    # -- parts ---------------------------------------------------------------------------
    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> int:
        child = Child(name, argv, env, log)
        pid = child.spawn()
        self.children[name] = child
        self.parts[name] = Part(name, log=str(log), pid=pid)
        self.save()
        return pid

    def adopt_argilla(self, launcher) -> None:
        """Supervise each part of ``launcher`` (a started :class:`LocalArgilla`)."""
        from concner.argilla.launcher import PARTS

        self.launcher = launcher
        self.argilla_folder = str(launcher.folder)
        for part in PARTS:
            self.parts[f"argilla {part}"] = Part(f"argilla {part}", pid=launcher.pid_of(part),
                                                 log=str(launcher.log_path(part)))
        self.save()

    def poll(self, now: float | None = None) -> None:
        """One round: notice parts that died, restart the ones whose backoff is over."""
        now = time.monotonic() if now is None else now
        changed = False
        for name, child in self.children.items():
            part = self.parts[name]
            if part.state == RUNNING:
                code = child.exit_code()
                if code is not None:
                    self._died(part, code, now)
                    changed = True
            if part.due(now):
                try:
                    pid = child.spawn()
                except OSError as exc:
                    self._died(part, None, now, why=str(exc))
                else:
                    part.started(pid)
                    self.log(f"concner up: {name} restarted (pid {pid}, restart "
                             f"{part.restarts})")
                changed = True
        if self.launcher is not None:
            changed |= self._poll_argilla(now)
        if changed:
            self.save()

    def _poll_argilla(self, now: float) -> bool:
        from concner.argilla.launcher import PARTS

        changed = False
        for part_name, code in self.launcher.exited().items():
            part = self.parts[f"argilla {part_name}"]
            if part.state == RUNNING:
                self._died(part, code, now)
                changed = True
        for part_name in PARTS:  # in start order: redis and search before the server
            part = self.parts[f"argilla {part_name}"]
            if not part.due(time.monotonic()):
                continue
            try:
                self.launcher.restart_part(part_name)
            except DependencyDown as exc:
                if not part.message.startswith(f"{part.name} waits for"):
                    self.log(f"concner up: {part.name} waits for {exc.needs} to answer")
                part.waits_for(exc.needs, self.policy, time.monotonic())
            except ServiceUnavailable as exc:
                self._died(part, None, time.monotonic(), why=str(exc).splitlines()[0][:300])
            else:
                part.started(self.launcher.pid_of(part_name))
                self.log(f"concner up: {part.name} restarted (pid {part.pid}, restart "
                         f"{part.restarts})")
            changed = True
            self.save()
        return changed

    def _died(self, part: Part, code: int | None, now: float, why: str = "") -> None:
        part.died(code, self.policy, now)
        if why:
            part.message += f" ({why})"
        if part.state == GAVE_UP:
            self.log(f"concner up: {part.message}; everything else stays up")
        else:
            self.log(f"concner up: {part.message}")

    # -- state ---------------------------------------------------------------------------
    def save(self) -> None:
        write_state(self.state_file, {
            "pid": os.getpid(), "host": socket.gethostname(), "status": self.status,
            "started_at": self.started_at,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "policy": {"backoff_s": self.policy.backoff_s,
                       "backoff_max_s": self.policy.backoff_max_s,
                       "max_restarts": self.policy.max_restarts,
                       "window_s": self.policy.window_s},
            "argilla": {"folder": self.argilla_folder, "owned": self.launcher is not None},
            "parts": {name: part.to_dict() for name, part in self.parts.items()},
        })

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the children in reverse start order, then the Argilla stack."""
        self.status = "stopping"
        for name in reversed(list(self.children)):
            self.children[name].stop(grace)
            self.parts[name].state, self.parts[name].pid = STOPPED, None
        self.children.clear()
        if self.launcher is not None:
            self.launcher.down()
            for name, part in self.parts.items():
                if name.startswith("argilla "):
                    part.state, part.pid = STOPPED, None
        self.status = STOPPED
        self.save()
