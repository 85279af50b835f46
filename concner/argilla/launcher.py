"""Start, stop and inspect a real local Argilla stack, without Docker.

The stack (all on 127.0.0.1, all data in one folder):

- ``redis``: Debian's ``redis-server`` (argilla-server pings it and runs rq jobs on it);
- ``search``: the ``noida-db`` Elasticsearch 8 emulator (argilla-server needs a search
  engine and exits after ~65 s without one);
- ``server``: ``argilla-server`` 2.8 on SQLite, and ``worker``: its rq worker.

argilla-server's pins clash with the app's, so it runs from its own virtualenv
(default ``~/.cache/concner/argilla-venv``, created once, reused across runs and
folders). This module does not import ``argilla``: it only runs processes and speaks
HTTP to see whether they answer. Each process gets its own process group and a pid file
under ``<folder>/run``; ``down`` stops exactly those groups.

On first start an owner user with a random password and API key is created; both are
kept in ``<folder>/credentials.json`` (mode 0600) and never logged.

Beside it: :mod:`concner.argilla.processes` (pids, process groups, ports, health checks),
:mod:`concner.argilla.server_setup` (the virtualenv, each part's command line, the server's
CLI, the owner) and :mod:`concner.argilla.stack_status` (what is reported).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from concner.argilla.processes import (
    cmdline_has,
    free_port,
    group_members,
    http_ok,
    pid_alive,
    port_accepts,
    process_state,
    redis_ok,
    wait_gone,
)
from concner.argilla.server_setup import (  # noqa: F401 (OWNER, WORKSPACE re-exported)
    OWNER,
    VENV_REQUIREMENTS,
    WORKSPACE,
    ensure_server_venv,
    noida_binary,
    owner_steps,
    part_command,
    read_json,
    run_server_cli,
    server_env,
)
from concner.argilla.stack_status import PartStatus, StackStatus
from concner.config import ServicesConfig
from concner.errors import ConfigError, DependencyDown, ServiceUnavailable

PARTS = ("redis", "search", "server", "worker")
_STOP_GRACE_S = 15.0
#: how long a SIGKILLed part is waited for before it is logged as still exiting
_KILL_WAIT_S = 10.0
#: The search emulator answers within a fraction of a second when it works; one that has
#: not answered after this long is stuck (seen under load in CI), and a fresh one on a new
#: port is the way out, not a longer wait.
_SEARCH_READY_S = 30.0
_SEARCH_ATTEMPTS = 3
#: how long a part left running by an earlier run may take to answer before it is replaced
_ADOPT_WAIT_S = 10.0


#: what each part's command line contains (a pid file may outlive its process, and the
#: pid be reused by something else, which must never be signalled)
_CMDLINE_MARK = {"redis": b"redis-server", "search": b"noida-db", "server": b"argilla_server",
                 "worker": b"argilla_server"}


def _is_ours(pid: int, part: str) -> bool:
    """Does ``pid``'s command line say it is ``part``?"""
    return cmdline_has(pid, _CMDLINE_MARK[part])


class LocalArgilla:
    """A local Argilla stack living in ``folder``.

    ``LocalArgilla(folder).up()`` returns a :class:`StackStatus` with the URL and the
    owner's API key; ``down()`` stops what ``up`` started; ``status()`` reports each part.
    Ports of a running stack are read back from ``<folder>/stack.json``; pass ``port=0``
    (or any port argument 0) to pick free ports, as the tests do.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        venv: str | os.PathLike = "~/.cache/concner/argilla-venv",
        port: int = 6900,
        redis_port: int = 6391,
        search_port: int = 9201,
        start_timeout_s: float = 180.0,
        log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    ):
        self.folder = Path(folder).expanduser().resolve()
        self.venv = Path(venv).expanduser().resolve()
        self.start_timeout_s = start_timeout_s
        self.log = log
        # before anything asks _alive (which looks here first)
        self._procs: dict[str, subprocess.Popen] = {}
        self._auto_ports: set[str] = set()
        self.ports = {"server": port, "redis": redis_port, "search": search_port}
        saved = read_json(self.folder / "stack.json") or {}
        ports = saved.get("ports") if isinstance(saved.get("ports"), dict) else None
        if ports and any(self._alive(p) for p in PARTS):  # a running stack keeps its ports
            with contextlib.suppress(TypeError, ValueError):
                self.ports = {k: int(ports[k]) for k in self.ports}

    @classmethod
    def from_config(cls, services: ServicesConfig, folder: str | None = None, **kw) -> LocalArgilla:
        url = urlparse(services.argilla_url)
        if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
            raise ConfigError(
                f"services.argilla_url is {services.argilla_url!r}; the local launcher serves "
                "http://127.0.0.1:<port> only (point argilla_url there, or run your own server)"
            )
        return cls(folder or services.argilla_data_dir, venv=services.argilla_venv, port=url.port,
                   redis_port=services.argilla_redis_port, search_port=services.argilla_search_port,
                   start_timeout_s=services.argilla_start_timeout_s, **kw)

    # -- paths ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['server']}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def credentials_path(self) -> Path:
        return self.folder / "credentials.json"

    def _pidfile(self, part: str) -> Path:
        return self.folder / "run" / f"{part}.pid"

    def _logfile(self, part: str) -> Path:
        return self.folder / "logs" / f"{part}.log"

    def _pid(self, part: str) -> int | None:
        try:
            return int(self._pidfile(part).read_text().strip())
        except (OSError, ValueError):
            return None

    def _owned_pid(self, part: str) -> int | None:
        """The pid of ``part``'s running process, or ``None``. A process this object
        started is asked directly (an unreaped child's pid cannot be reused, so no guessing
        from ``/proc`` is needed); one started earlier, known from its pid file only, must
        also have ``part``'s command line, since that pid may belong to something else now."""
        proc = self._procs.get(part)
        if proc is not None:
            return proc.pid if proc.poll() is None and pid_alive(proc.pid) else None
        pid = self._pid(part)
        return pid if pid is not None and pid_alive(pid) and _is_ours(pid, part) else None

    def _alive(self, part: str) -> bool:
        return self._owned_pid(part) is not None

    # -- the virtualenv ------------------------------------------------------------------
    def ensure_venv(self) -> Path:
        """Create the server's virtualenv once (~70 s); reuse it when its marker matches."""
        return ensure_server_venv(self.venv, self.log)

    # -- processes -----------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        return server_env(self.folder, self.ports)

    def _command(self, part: str) -> list[str]:
        return part_command(part, venv=self.venv, folder=self.folder, ports=self.ports)

    def _ready(self, part: str) -> bool:
        if part == "redis":
            return redis_ok(self.ports["redis"])
        if part == "search":
            return http_ok(f"http://127.0.0.1:{self.ports['search']}/")
        if part == "server":
            return http_ok(f"{self.url}/api/v1/version")
        return True  # the worker has no port; it is ready when it runs

    def _spawn(self, part: str) -> None:
        cmd = self._command(part)
        with open(self._logfile(part), "ab") as logf:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, env=self._env(), cwd=self.folder,
                                    start_new_session=True)
        self._procs[part] = proc
        self._pidfile(part).write_text(str(proc.pid))

    def _ready_timeout(self, part: str) -> float:
        return min(self.start_timeout_s, _SEARCH_READY_S) if part == "search" else self.start_timeout_s

    def _wait_ready(self, part: str) -> None:
        timeout = self._ready_timeout(part)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready(part):
                return
            if not self._alive(part):
                break
            time.sleep(0.3)
        # (no exit code: pid_alive reaps children, so Popen cannot know it)
        alive = self._alive(part)
        why = f"no answer within {timeout:.0f} s" if alive else "it stopped running"
        if alive and part != "worker":
            port = self.ports[part]
            why += (f"; port {port} {'accepts connections' if port_accepts(port) else 'is not open'}"
                    f"; process {process_state(self._pid(part))}")
        raise ServiceUnavailable(
            f"Argilla's {part} did not come up ({why}; see {self._logfile(part)}): "
            f"{self._log_tail(part)}"
        )

    def _start_part(self, part: str, before_spawn=None, *, may_move: bool = True) -> None:
        """Spawn ``part`` unless it runs, and wait until it answers. The search emulator gets
        up to three tries, each on a fresh automatic port: now and then (under load) it
        starts, prints its banner and never answers, which should not take the stack down."""
        attempts = _SEARCH_ATTEMPTS if part == "search" else 1
        for attempt in range(1, attempts + 1):
            if attempt > 1 or not self._alive(part):  # a retry always starts a new process
                if before_spawn is not None:
                    before_spawn()
                self._spawn(part)
            try:
                self._wait_ready(part)
                return
            except ServiceUnavailable as err:
                if attempt == attempts:
                    raise
                self.log(f"argilla: {err}; starting it again (try {attempt + 1} of {attempts})")
                self._stop_part(part)
                if may_move and part in self._auto_ports:  # a port the user chose stays
                    self.ports[part] = free_port()
                (self.folder / "stack.json").write_text(json.dumps({"ports": self.ports}))

    def _stop_part(self, part: str, *, grace_s: float = 0.0) -> tuple[bool, bool]:
        """Stop ``part``'s process group and forget its pid file. With ``grace_s`` > 0 it is
        asked (SIGTERM) and killed only if still running after that long; with 0 (it failed
        to come up) it is killed at once. A process that outlives SIGKILL for a while is
        logged, not waited on for ever. Returns (it was running, it exited when asked)."""
        pid = self._owned_pid(part)
        clean = False
        if pid is not None:
            if grace_s > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                clean = wait_gone(pid, grace_s)
            if not clean:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                if not wait_gone(pid, _KILL_WAIT_S):
                    self.log(f"argilla: {part} (pid {pid}) is still exiting after SIGKILL "
                             f"({process_state(pid)})")
        proc = self._procs.pop(part, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        self._kill_leftovers(part, proc.pid if proc is not None else self._pid(part))
        self._pidfile(part).unlink(missing_ok=True)
        return pid is not None, clean

    def _kill_leftovers(self, part: str, leader: int | None) -> None:
        """Kill what a dead ``part`` left in its process group (argilla-server's worker
        forks a work horse that outlives a SIGKILLed parent). Only processes whose command
        line says they are ``part`` are signalled: the group id may be someone else's by now."""
        if leader is None or pid_alive(leader):
            return
        for pid in group_members(leader):
            if _is_ours(pid, part):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, _KILL_WAIT_S)

    def _log_tail(self, part: str, n: int = 600) -> str:
        try:
            return self._logfile(part).read_text(errors="replace")[-n:].strip()
        except OSError:
            return "(no log)"

    def _run_cli(self, steps: list[list[str]], what: str) -> None:
        run_server_cli(self.python, steps, what, env=self._env(), cwd=self.folder)

    def _stop_unanswering(self, wait_s: float = _ADOPT_WAIT_S) -> None:
        """Parts left running by an earlier run (known from their pid files: a `concner up`
        killed with SIGKILL leaves them) are adopted when they answer; one that does not
        answer within ``wait_s`` is stopped, so that ``up`` starts it afresh on its port.
        Of a dead one, what it left in its process group is killed and its pid file goes."""
        for part in PARTS:
            if part in self._procs:
                continue
            if not self._alive(part):  # dead: what it left in its group, and its pid file
                if self._pid(part) is not None:
                    self._kill_leftovers(part, self._pid(part))
                    self._pidfile(part).unlink(missing_ok=True)
                continue
            if part == "worker":  # no port: it is adopted as long as it runs
                continue
            deadline = time.monotonic() + wait_s
            while not self._ready(part) and time.monotonic() < deadline:
                time.sleep(0.3)
            if not self._ready(part):
                self.log(f"argilla: {part} (pid {self._pid(part)}) from an earlier run does not "
                         f"answer; stopping it")
                self._stop_part(part, grace_s=2.0)

    # -- supervision (concner up) ----------------------------------------------------------
    def exited(self) -> dict[str, int | None]:
        """Parts that were running and have stopped: name -> exit code (``None`` when it is
        not known: a part adopted from an earlier run is not this process's child)."""
        out: dict[str, int | None] = {}
        for part in PARTS:
            proc = self._procs.get(part)
            if proc is not None:
                code = proc.poll()
                if code is not None:
                    out[part] = code
            elif self._pid(part) is not None and not self._alive(part):
                out[part] = None
        return out

    def pid_of(self, part: str) -> int | None:
        return self._owned_pid(part)

    def log_path(self, part: str) -> Path:
        return self._logfile(part)

    def restart_part(self, part: str) -> None:
        """Start ``part`` again after it died, on its port, and wait until it answers.

        The search emulator keeps its index in memory, so after a death (never a clean stop)
        its index is rebuilt from SQLite once it answers. argilla-server and its worker need
        Redis and the search engine: :class:`ServiceUnavailable` when those do not answer
        (restart them first): :class:`DependencyDown` then, before anything is started. Raises
        :class:`ServiceUnavailable` when ``part`` does not come up."""
        self._stop_part(part)  # whatever is left of it, and its pid file
        if part in ("server", "worker"):
            for need in ("redis", "search"):
                if not self._ready(need):
                    raise DependencyDown(f"Argilla's {part} needs {need}, which does not "
                                         f"answer on 127.0.0.1:{self.ports[need]}",
                                         part=part, needs=need)
        if part == "search":
            (self.folder / "run" / "search-clean").unlink(missing_ok=True)
            self._start_part("search", may_move=False)  # the server knows this port
            if (self.folder / "argilla.db").exists():
                self.log("argilla: the search emulator restarted; rebuilding its index")
                self._run_cli([["search-engine", "reindex"]], "search reindex")
        elif part == "server":
            self._spawn("server")
            self._wait_ready("server")
        else:
            self._start_part(part, may_move=False)

    # -- public --------------------------------------------------------------------------
    def up(self) -> StackStatus:
        """Start every part that is not running, wait until the server answers.

        Idempotent: a stack that already runs is reported (``already_running=True``).
        Raises :class:`ServiceUnavailable` (with the failing part's log tail) when a part
        does not come up within ``start_timeout_s``.
        """
        current = self.status()
        if current.all_running:
            current.already_running = True
            return current
        for sub in ("run", "logs", "home", "search"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._stop_unanswering()
        self._auto_ports = {part for part, port in self.ports.items() if port == 0}
        for part in self._auto_ports:
            self.ports[part] = free_port()
        self.ensure_venv()
        (self.folder / "stack.json").write_text(json.dumps({"ports": self.ports}))
        # The emulator keeps its index in memory and saves it when stopped cleanly (down()
        # leaves a marker then); after any other stop, rebuild the index from SQLite.
        clean = self.folder / "run" / "search-clean"
        reindex = ((self.folder / "argilla.db").exists() and not self._alive("search")
                   and not clean.exists())
        migrated = self.folder / "run" / "migrated"
        migrate = not ((self.folder / "argilla.db").exists() and migrated.exists()
                       and migrated.read_text() == "\n".join(VENV_REQUIREMENTS))
        try:
            self._start_part("redis")
            self._start_part("search", before_spawn=lambda: clean.unlink(missing_ok=True))
            if not self._alive("server"):
                owner = owner_steps(self.credentials_path)
                steps = ([["database", "migrate"]] if migrate else []) + owner
                steps += [["search-engine", "reindex"]] if reindex else []
                try:
                    if steps:
                        self._run_cli(steps, "setup (" + ", ".join(" ".join(s[:2]) for s in steps) + ")")
                except ServiceUnavailable:
                    if owner:
                        self.credentials_path.unlink(missing_ok=True)  # the owner was not made
                    raise
                migrated.write_text("\n".join(VENV_REQUIREMENTS))
                self._spawn("server")
            elif reindex:
                self._run_cli([["search-engine", "reindex"]], "search reindex")
            self._wait_ready("server")
            if not self._alive("worker"):
                self._spawn("worker")
        except BaseException:
            self.down()
            raise
        creds = read_json(self.credentials_path) or {}
        status = self.status()
        status.username, status.password, status.api_key = (
            creds.get("username"), creds.get("password"), creds.get("api_key"))
        return status

    def down(self) -> list[str]:
        """Stop every part this folder started (worker first); returns their names."""
        stopped = []
        for part in reversed(PARTS):
            ran, clean = self._stop_part(part, grace_s=_STOP_GRACE_S)
            if ran:
                if clean and part == "search":  # it saved its index: no reindex needed next time
                    (self.folder / "run" / "search-clean").touch()
                stopped.append(part)
        return stopped

    def status(self) -> StackStatus:
        parts = []
        for part in PARTS:
            pid = self._pid(part)
            alive = self._alive(part)
            ready = alive and self._ready(part)
            where = "" if part == "worker" else f" on 127.0.0.1:{self.ports[part]}"
            detail = ("answering" if ready else "started, not answering") + where if alive else "stopped"
            parts.append(PartStatus(part, alive and ready, pid if alive else None, detail))
        creds = read_json(self.credentials_path) or {}
        return StackStatus(self.folder, self.url, self._ready("server"), parts,
                           creds.get("username"), creds.get("password"), creds.get("api_key"))
