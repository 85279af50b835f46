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

The machinery is in :mod:`concner.stack`: :class:`~concner.stack.supervisor.Supervisor`
(restarts, the state file), :mod:`concner.stack.processes` (the children) and
:mod:`concner.stack.previous_run` (what an earlier run left behind, the port check).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from concner.errors import ConcnerError
from concner.stack.previous_run import PORT_RELEASE_SECONDS, clear_previous_run, port_in_use
from concner.stack.supervisor import RUNNING, RestartPolicy, Supervisor, state_path

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_FILE = REPO_ROOT / "app.py"
POLL_SECONDS = 0.5


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
    if port_in_use(args.host, args.port, wait_s=PORT_RELEASE_SECONDS if previous else 0.0):
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
