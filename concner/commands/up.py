"""``concner up``: everything the app needs on one machine, in one command.

In order: migrate the store; start the local Argilla stack (unless ``--no-argilla``)
through :mod:`concner.argilla_launcher`; start the queue worker as a subprocess;
start ``streamlit run app.py`` on ``127.0.0.1:8501``. It prints where to open the app and
waits. ``Ctrl-C`` (or SIGTERM, or any child dying) stops everything it started, in reverse
order: SIGTERM to each child's process group, SIGKILL after a grace period, then the
Argilla stack.

The children get the resolved settings as ``CONCNER_*`` environment variables (database
URL, Argilla URL and API key, the config file as ``CONCNER_CONFIG``), so the app and the
worker see the same store and the same Argilla. The API key is never printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from concner.errors import ConcnerError

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_FILE = REPO_ROOT / "app.py"
STOP_GRACE_SECONDS = 15.0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "up", help="start the store, worker, local Argilla and the app; Ctrl-C stops all",
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


class Supervisor:
    """Child processes, each in its own process group, stopped in reverse start order."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        # the caller's directory: relative paths in the config mean the same to everyone
        proc = subprocess.Popen(argv, env=env, cwd=os.getcwd(), start_new_session=True)
        self.children.append((name, proc))
        return proc

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.children:
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        for name, proc in reversed(self.children):
            if proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                print(f"concner up: {name} did not stop in {grace:.0f} s; killing it",
                      file=sys.stderr)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.children.clear()


def _child_env(args, config) -> dict[str, str]:
    env = dict(os.environ)
    env["CONCNER_SERVICES__DATABASE_URL"] = config.services.database_url
    env["CONCNER_SERVICES__QUEUE_PATH"] = config.services.queue_path
    if args.config:
        env["CONCNER_CONFIG"] = str(Path(args.config).resolve())
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _start_argilla(args, config, env: dict[str, str]):
    """Start the local Argilla stack (:mod:`concner.argilla_launcher`); put its URL and API
    key into ``env`` for the children. Returns ``(launcher or None, status)``: ``None``
    when the stack was already running (then it is left running on exit)."""
    from concner.argilla_launcher import LocalArgilla

    launcher = LocalArgilla.from_config(config.services, args.argilla_home)
    status = launcher.up()
    env["CONCNER_SERVICES__ARGILLA_URL"] = status.url
    modules = [m for m in config.services.sync_modules if m]
    if "concner.argilla_sync" not in modules:  # the worker syncs with this Argilla
        env["CONCNER_SERVICES__SYNC_MODULES"] = ",".join(modules + ["concner.argilla_sync"])
    if status.api_key:
        env["CONCNER_SERVICES__ARGILLA_API_KEY"] = status.api_key
    return (None if status.already_running else launcher), status


def run(args) -> int:
    from concner.config import load_config
    from concner.store.db import upgrade_database

    if not APP_FILE.is_file():
        raise ConcnerError(f"{APP_FILE} is missing; run `concner up` from a source checkout")
    config = load_config(args.config)
    env = _child_env(args, config)
    print("concner up: migrating the store ...", flush=True)
    upgrade_database(config.services.database_url)

    supervisor = Supervisor()
    launcher = None
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C must stop everything even when `up` was started with SIGINT ignored (a shell
    # running it in the background, nohup): Python then installs no KeyboardInterrupt.
    previous_int = signal.signal(signal.SIGINT, on_signal)
    try:
        if not args.no_argilla:
            print("concner up: starting the local Argilla (first start installs it) ...",
                  flush=True)
            launcher, info = _start_argilla(args, config, env)
            print(f"concner up: Argilla at {info.url} (user {info.username}; password and API "
                  f"key in {info.folder / 'credentials.json'}, not printed here)", flush=True)
        if not args.no_worker:
            supervisor.start("worker", [sys.executable, "-m", "workers.retrain"], env)
        url = f"http://{args.host}:{args.port}"
        supervisor.start("app", [
            sys.executable, "-m", "streamlit", "run", str(APP_FILE),
            "--server.address", args.host, "--server.port", str(args.port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.maxUploadSize", str(config.data.max_upload_mb),
        ], env)
        print(f"\nconcner up: ConCNER Studio is at {url}  (Ctrl-C stops everything)\n",
              flush=True)
        while True:
            exited = supervisor.first_exited()
            if exited is not None:
                name, code = exited
                print(f"concner up: {name} exited with code {code}; stopping the rest",
                      file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nconcner up: stopping ...", flush=True)
        return 0
    finally:
        supervisor.stop_all()
        if launcher is not None:
            launcher.down()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        print("concner up: stopped", flush=True)
