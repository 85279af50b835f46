"""``concner up``: everything the app needs on one machine, in one command.

In order: migrate the store; start the local Argilla stack (unless ``--no-argilla``)
through :mod:`concner.argilla.launcher`; start the queue worker as a subprocess;
start ``streamlit run app.py`` on ``127.0.0.1:8501``. It prints where to open the app and
supervises: a part that dies (the worker, the app, Argilla's redis, search emulator,
server or rq worker) is started again after 1 s, 2 s, 4 s ... (``services.supervisor_*``)
while the rest stay up; a part that died more than ``services.supervisor_max_restarts``
times within ``services.supervisor_window_s`` is given up, alone. What each part does is in
``<services.run_dir>/supervisor.json`` (the app's Overview shows it); the worker's and the
app's output also goes to ``<services.run_dir>/logs/``. ``Ctrl-C`` (or SIGTERM) stops
everything it started, in reverse order: SIGTERM to each child's process group, SIGKILL
after a grace period, then the Argilla stack.

A second ``concner up`` after any kind of stop starts again: a worker or app left behind by
a ``concner up`` that was killed is stopped, Argilla parts left behind are adopted when they
answer (and replaced when they do not), stale pid files are ignored.

The children get the resolved settings as ``CONCNER_*`` environment variables (database
URL, Argilla URL and API key, the config file as ``CONCNER_CONFIG``), so the app and the
worker see the same store and the same Argilla. The API key is never printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from concner.errors import ConcnerError, DependencyDown, ServiceUnavailable
from concner.stack.supervisor import (
    GAVE_UP,
    RUNNING,
    STOPPED,
    Part,
    RestartPolicy,
    read_state,
    state_path,
    write_state,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_FILE = REPO_ROOT / "app.py"
STOP_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.5
#: what the command line of each child of an earlier `concner up` contains
_CHILD_MARK = {"worker": b"workers.retrain", "app": b"streamlit"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "up", help="start the store, worker, local Argilla and the app, restart what dies; "
                   "Ctrl-C stops all",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--config", help="TOML config file (also read by the app and the worker)")
    p.add_argument("--host", default="127.0.0.1", help="address the app listens on")
    p.add_argument("--port", type=int, default=8501, help="port of the app (default 8501)")
    p.add_argument("--no-argilla", action="store_true",
                   help="do not start a local Argilla (use services.argilla_url as is, or none)")
    p.add_argument("--no-worker", action="store_true",
                   help="do not start a queue worker (run `concner worker` elsewhere)")
    p.add_argument("--argilla-home", default=None,
                   help="folder for the local Argilla's data (default: services.argilla_data_dir)")
    p.set_defaults(func=run)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stop_group(pid: int, grace: float, name: str) -> None:
    """SIGTERM to process group ``pid``, SIGKILL after ``grace`` seconds."""
    from concner.jobs.liveness import pid_running

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_running(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_running(pid):
        print(f"concner up: {name} did not stop in {grace:.0f} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10  # gone, and its port free, before we go on
        while pid_running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _tee(stream, log_path: Path) -> None:
    """Copy a child's output to this terminal and to its log file."""
    with open(log_path, "ab") as log:
        for line in iter(stream.readline, b""):
            log.write(line)
            log.flush()
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.buffer.write(line)
                sys.stdout.flush()


class Child:
    """A supervised subprocess in its own process group (the worker, the app)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def spawn(self) -> int:
        # the caller's directory: relative paths in the config mean the same to everyone
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=os.getcwd(),
                                     start_new_session=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=_tee, args=(self.proc.stdout, self.log), daemon=True,
                         name=f"tee-{self.name}").start()
        return self.proc.pid

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace: float) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            else:
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    print(f"concner up: {self.name} did not stop in {grace:.0f} s; killing it",
                          file=sys.stderr)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):  # what it left behind
            os.killpg(proc.pid, signal.SIGKILL)


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


#: an orphan's output pipe is gone with its `concner up`; it may hang on its way out
ORPHAN_GRACE_SECONDS = 5.0


def clear_previous_run(state_file: Path, *, grace: float = ORPHAN_GRACE_SECONDS) -> dict | None:
    """Make room after an earlier ``concner up`` (its state file): refuse when it still runs;
    stop the worker and app it left behind when it was killed. Returns its state."""
    from concner.jobs.liveness import pid_running

    previous = read_state(state_file)
    if not previous:
        return None
    pid = previous.get("pid")
    if (isinstance(pid, int) and pid != os.getpid() and pid_running(pid)
            and b"concner" in _cmdline(pid) and b"up" in _cmdline(pid).split(b"\0")):
        raise ConcnerError(f"`concner up` is already running (pid {pid}, state in "
                           f"{state_file}); stop it with Ctrl-C or `kill {pid}` first")
    for name, part in (previous.get("parts") or {}).items():
        child_pid = part.get("pid")
        mark = _CHILD_MARK.get(name)
        if (mark and isinstance(child_pid, int) and pid_running(child_pid)
                and mark in _cmdline(child_pid)):
            print(f"concner up: stopping the {name} (pid {child_pid}) an earlier `concner up` "
                  "left running", flush=True)
            _stop_group(child_pid, grace, name)
    return previous


#: a SIGKILLed app's leader thread shows as a zombie while its other threads, which share
#: its open sockets, are still exiting: on a busy machine its port stays taken for seconds
PORT_RELEASE_SECONDS = 20.0


def _port_in_use(host: str, port: int, *, wait_s: float = 0.0) -> bool:
    """Does something accept connections on ``host:port``, still after ``wait_s`` seconds
    (an app stopped just now releases its port a little later)?"""
    address = (host if host not in ("0.0.0.0", "") else "127.0.0.1", port)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection(address, timeout=1.0):
                pass
        except OSError:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.25)


def _child_env(args, config) -> dict[str, str]:
    env = dict(os.environ)
    env["CONCNER_SERVICES__DATABASE_URL"] = config.services.database_url
    env["CONCNER_SERVICES__QUEUE_PATH"] = config.services.queue_path
    env["CONCNER_SERVICES__RUN_DIR"] = str(Path(config.services.run_dir).expanduser().resolve())
    if args.config:
        env["CONCNER_CONFIG"] = str(Path(args.config).resolve())
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")  # their output is copied line by line
    return env


def _start_argilla(args, config, env: dict[str, str], previous: dict | None):
    """Start the local Argilla stack (:mod:`concner.argilla.launcher`); put its URL and API
    key into ``env`` for the children. Returns ``(launcher or None, status)``: ``None``
    when the stack was already running on its own (``concner argilla up``: then it is left
    running on exit, and not supervised). A stack left behind by an earlier ``concner up``
    that was killed is adopted: supervised, and stopped on exit."""
    from concner.argilla.launcher import LocalArgilla

    launcher = LocalArgilla.from_config(config.services, args.argilla_home)
    status = launcher.up()
    env["CONCNER_SERVICES__ARGILLA_URL"] = status.url
    modules = [m for m in config.services.sync_modules if m]
    if "concner.argilla.sync" not in modules:  # the worker syncs with this Argilla
        env["CONCNER_SERVICES__SYNC_MODULES"] = ",".join(modules + ["concner.argilla.sync"])
    if status.api_key:
        env["CONCNER_SERVICES__ARGILLA_API_KEY"] = status.api_key
    before = (previous or {}).get("argilla") or {}
    adopted = (status.already_running and before.get("owned")
               and before.get("folder") == str(launcher.folder))
    if adopted:
        print("concner up: adopting the local Argilla an earlier `concner up` left running",
              flush=True)
    return (None if status.already_running and not adopted else launcher), status


def run(args) -> int:
    from concner.config import load_config
    from concner.store.db import upgrade_database

    if not APP_FILE.is_file():
        raise ConcnerError(f"{APP_FILE} is missing; run `concner up` from a source checkout")
    config = load_config(args.config)
    env = _child_env(args, config)
    state_file = state_path(config.services)
    logs = state_file.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    previous = clear_previous_run(state_file)
    if _port_in_use(args.host, args.port, wait_s=PORT_RELEASE_SECONDS if previous else 0.0):
        raise ConcnerError(f"port {args.port} on {args.host} is in use by another program; "
                           "stop it or pass --port")
    print("concner up: migrating the store ...", flush=True)
    upgrade_database(config.services.database_url)

    supervisor = Supervisor(RestartPolicy.from_services(config.services), state_file)
    supervisor.save()  # claims the run folder: a second `concner up` now refuses
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C must stop everything even when `up` was started with SIGINT ignored (a shell
    # running it in the background, nohup): Python then installs no KeyboardInterrupt.
    previous_int = signal.signal(signal.SIGINT, on_signal)
    launcher = None
    try:
        if not args.no_argilla:
            print("concner up: starting the local Argilla (first start installs it) ...",
                  flush=True)
            launcher, info = _start_argilla(args, config, env, previous)
            if launcher is not None:
                supervisor.adopt_argilla(launcher)
            print(f"concner up: Argilla at {info.url} (user {info.username}; password and API "
                  f"key in {info.folder / 'credentials.json'}, not printed here)", flush=True)
        if not args.no_worker:
            supervisor.start("worker", [sys.executable, "-m", "workers.retrain"], env,
                             logs / "worker.log")
        url = f"http://{args.host}:{args.port}"
        supervisor.start("app", [
            sys.executable, "-m", "streamlit", "run", str(APP_FILE),
            "--server.address", args.host, "--server.port", str(args.port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.maxUploadSize", str(config.data.max_upload_mb),
            # as .streamlit/config.toml, which streamlit reads only when started in the
            # repository root: no Deploy/Rerun developer menu from any directory
            "--client.toolbarMode", "minimal",
        ], env, logs / "app.log")
        supervisor.status = RUNNING
        supervisor.save()
        print(f"\nconcner up: ConCNER Studio is at {url}  (Ctrl-C stops everything; logs and "
              f"state in {state_file.parent})\n", flush=True)
        while True:
            supervisor.poll()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        print("\nconcner up: stopping ...", flush=True)
        return 0
    finally:
        # a second signal while stopping must not leave half the stack running
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            supervisor.stop_all()
        finally:
            if launcher is not None and supervisor.launcher is None:
                launcher.down()
            signal.signal(signal.SIGTERM, previous_term)
            signal.signal(signal.SIGINT, previous_int)
            print("concner up: stopped", flush=True)
