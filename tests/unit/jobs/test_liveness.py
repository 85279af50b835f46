"""One answer to "is the worker alive?": a real worker killed with SIGKILL shows as dead in
``concner project status`` and in the app's health helper alike, while its heartbeat row
is still fresh and still says ``running``."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from prockit import wait_for
from storekit import service_env

from concner.jobs.liveness import judge, worker_status
from concner.store import Store


def _cli_status(tmp_path, env) -> str:
    done = subprocess.run([sys.executable, "-m", "concner.cli", "project", "status", "demo"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_sigkilled_worker_is_dead_for_the_cli_and_for_the_app(tmp_path):
    from concner.ui.health import worker_status as app_worker_status
    from concner.ui.views import worker_status as views_worker_status

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.create_project("demo", source_lang="en", target_langs=["de"],
                         entity_types=["PER"], encoder="tiny")
    # a long timeout: only the pid check can tell that the worker is gone
    env = service_env(tmp_path, url, CONCNER_SERVICES__HEARTBEAT_SECONDS="0.5",
                      CONCNER_SERVICES__LOCK_STALE_SECONDS="120")
    worker = subprocess.Popen([sys.executable, "-m", "workers.retrain"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        row = wait_for(lambda: [w for w in store.workers() if w.status == "running"], 60,
                    "the worker's heartbeat", worker)[0]
        assert row.pid == worker.pid
        assert f"worker {row.worker_id}: running, last seen" in _cli_status(tmp_path, env)
        assert app_worker_status(store.workers(), timeout_s=120)[0]
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)

    (row,) = store.workers()
    assert row.status == "running"  # what the dead worker last wrote
    out = _cli_status(tmp_path, env)
    assert f"worker {row.worker_id}: dead (its row says running)" in out, out
    ok, text = app_worker_status(store.workers(), timeout_s=120)
    assert not ok and f"worker pid {row.pid} is gone" in text
    assert views_worker_status(store.workers(), fresh_seconds=120) == (ok, text)


def test_the_judge_reads_status_age_and_pid():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    me = __import__("socket").gethostname()

    def row(**kw):
        base = {"worker_id": "w", "host": me, "pid": None, "status": "running",
                "last_seen": now - timedelta(seconds=2), "current_run_id": None}
        return SimpleNamespace(**{**base, **kw})

    gone = subprocess.Popen(["true"])
    gone.wait()
    assert judge(row(pid=gone.pid), now=now).state == "dead"
    assert judge(row(pid=gone.pid, host="elsewhere"), now=now).state == "running"  # not ours
    import os

    assert judge(row(pid=os.getpid()), now=now).alive
    assert judge(row(pid=os.getpid(), last_seen=now - timedelta(seconds=61)), now=now,
                 timeout_s=60).state == "silent"
    assert judge(row(pid=os.getpid(), status="stopped"), now=now).state == "stopped"
    naive = row(pid=os.getpid(), last_seen=(now - timedelta(seconds=1)).replace(tzinfo=None))
    assert judge(naive, now=now).age_s == pytest.approx(1.0)
    assert worker_status([row(pid=os.getpid(), current_run_id=3)], now)[1].endswith(
        f"({me}, on run 3)")
