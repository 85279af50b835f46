"""``concner up --no-argilla``: one command brings up the store, a worker and the app, says
where to open it, and Ctrl-C (SIGINT) stops everything it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prockit import ProcessScope, alive

from concner.argilla.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
_free_port = free_port  # the other process tests import it from here


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_up_starts_app_and_worker_and_ctrl_c_stops_both(tmp_path):
    from concner.store import Store

    port = _free_port()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = dict(os.environ, CONCNER_SERVICES__DATABASE_URL=url,
               CONCNER_SERVICES__QUEUE_PATH=str(tmp_path / "queue.db"),
               CONCNER_SERVICES__CHECKPOINTS=str(tmp_path / "models"),
               CONCNER_SERVICES__HEARTBEAT_SECONDS="1", CONCNER_SERVICES__LOCK_STALE_SECONDS="5",
               CONCNER_SERVICES__RUN_DIR=str(tmp_path / "run"),
               PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))  # this checkout's concner
    env.pop("CONCNER_CONFIG", None)
    # if anything below fails, `concner up`, its worker and its app (each in a session of
    # its own) are stopped all the same: SIGTERM, then SIGKILL after 30 s
    with ProcessScope(timeout=30) as scope:
        proc = scope.popen([sys.executable, "-m", "concner.cli", "up", "--no-argilla",
                            "--port", str(port)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while not _answers(f"http://127.0.0.1:{port}/_stcore/health"):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the app did not answer in 120 s"
            time.sleep(0.5)
        store = Store(url, migrate=False)
        while not [w for w in store.workers() if w.status == "running"]:
            assert time.monotonic() < deadline, "the worker did not beat in 120 s"
            time.sleep(0.5)
        worker_pid = store.workers()[0].pid
        state = json.loads((tmp_path / "run" / "supervisor.json").read_text())
        app_argv = Path(f"/proc/{state['parts']['app']['pid']}/cmdline").read_bytes().split(b"\0")
        # started outside the repository, where .streamlit/config.toml is not read: the
        # Deploy/Rerun developer menu stays hidden all the same
        assert app_argv[app_argv.index(b"--client.toolbarMode") + 1] == b"minimal", app_argv
        started = scope.remaining()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, _ = proc.communicate(timeout=60)
        left = scope.remaining()  # before the scope cleans up: what `concner up` left
    assert proc.returncode == 0, out
    assert f"ConCNER Studio is at http://127.0.0.1:{port}" in out
    assert "concner up: stopped" in out
    assert not _answers(f"http://127.0.0.1:{port}/_stcore/health")
    assert len(started) >= 3 and worker_pid in started  # up, the worker, the app
    assert not left and not alive(worker_pid)
    assert store.workers()[0].status == "stopped"  # the worker shut down cleanly
