"""``concner up`` as a supervisor: a real ``concner up --no-argilla`` in a subprocess, its
worker killed with SIGKILL or crash-looping, and the restart policy on its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prockit import ProcessScope, alive, wait_for
from test_app_up import _answers, _free_port

from concner.stack.supervisor import GAVE_UP, RESTARTING, RUNNING, Part, RestartPolicy, state_lines

ROOT = Path(__file__).resolve().parents[2]


def _state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "supervisor.json").read_text())
    except (OSError, ValueError):
        return {}


def _up_env(tmp_path: Path, **extra) -> dict[str, str]:
    env = dict(os.environ, **{
        "CONCNER_SERVICES__DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "CONCNER_SERVICES__QUEUE_PATH": str(tmp_path / "queue.db"),
        "CONCNER_SERVICES__CHECKPOINTS": str(tmp_path / "models"),
        "CONCNER_SERVICES__RUN_DIR": str(tmp_path / "run"),
        "CONCNER_SERVICES__HEARTBEAT_SECONDS": "1", "CONCNER_SERVICES__LOCK_STALE_SECONDS": "5",
        "CONCNER_SERVICES__SUPERVISOR_BACKOFF_S": "0.5",
        "CONCNER_SERVICES__SUPERVISOR_BACKOFF_MAX_S": "2",
        "PYTHONUNBUFFERED": "1",
        # this checkout's concner, whatever an editable install elsewhere points at
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        **extra})
    env.pop("CONCNER_CONFIG", None)
    return env


def _start_up(scope: ProcessScope, tmp_path: Path, port: int, env: dict[str, str]):
    return scope.popen([sys.executable, "-m", "concner.cli", "up", "--no-argilla",
                        "--port", str(port)], cwd=tmp_path, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_sigkilled_worker_is_restarted_while_the_app_stays_up(tmp_path):
    from concner.jobs.liveness import judge
    from concner.store import Store

    port, run_dir = _free_port(), tmp_path / "run"
    health = f"http://127.0.0.1:{port}/_stcore/health"
    with ProcessScope(timeout=30) as scope:
        proc = _start_up(scope, tmp_path, port, _up_env(tmp_path))
        wait_for(lambda: _answers(health), 120, "the app answering", proc)
        store = Store(f"sqlite:///{tmp_path / 'store.db'}", migrate=False)
        first = wait_for(lambda: [w for w in store.workers() if w.status == "running"], 120,
                         "a worker heartbeat", proc)[0]
        state = _state(run_dir)
        app_pid = state["parts"]["app"]["pid"]
        assert state["parts"]["worker"]["pid"] == first.pid and alive(app_pid)

        os.kill(first.pid, signal.SIGKILL)
        restarted = wait_for(lambda: (_state(run_dir).get("parts", {}).get("worker", {})
                                      .get("restarts") == 1) and _state(run_dir), 60,
                             "the worker restarted in supervisor.json", proc)
        worker = restarted["parts"]["worker"]
        assert worker["state"] == RUNNING and worker["last_exit_code"] == -signal.SIGKILL
        assert worker["pid"] != first.pid and alive(worker["pid"])
        beat = wait_for(lambda: [w for w in store.workers()
                                 if w.pid == worker["pid"] and w.status == "running"], 120,
                        "a heartbeat from the new worker", proc)[0]
        # the heartbeat resumes: a later beat of the same row
        wait_for(lambda: next(w for w in store.workers() if w.worker_id == beat.worker_id)
                 .last_seen > beat.last_seen, 30, "a second beat of the new worker", proc)
        old = next(w for w in store.workers() if w.worker_id == first.worker_id)
        assert judge(old, timeout_s=5).state in ("dead", "silent")
        assert _state(run_dir)["parts"]["app"]["pid"] == app_pid and alive(app_pid)
        assert _answers(health)  # the app never went away

        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        left = scope.remaining()
    assert proc.returncode == 0, out
    assert "worker died (killed by SIGKILL); restarting" in out
    assert "concner up: stopped" in out and not left
    assert not alive(app_pid) and not alive(worker["pid"])
    final = _state(run_dir)
    assert final["status"] == "stopped"
    assert {p["state"] for p in final["parts"].values()} == {"stopped"}
    assert (run_dir / "logs" / "worker.log").stat().st_size > 0


@pytest.mark.slow
def test_a_crash_looping_worker_is_given_up_alone_and_the_app_says_so(tmp_path):
    from concner.config import load_config
    from concner.ui.health import supervisor_lines

    port, run_dir = _free_port(), tmp_path / "run"
    health = f"http://127.0.0.1:{port}/_stcore/health"
    # a module that does not exist: the worker exits with code 2 at every start
    env = _up_env(tmp_path, CONCNER_SERVICES__SYNC_MODULES="concner_no_such_module",
                  CONCNER_SERVICES__SUPERVISOR_MAX_RESTARTS="2",
                  CONCNER_SERVICES__SUPERVISOR_BACKOFF_S="0.2",
                  CONCNER_SERVICES__SUPERVISOR_WINDOW_S="300")
    with ProcessScope(timeout=30) as scope:
        proc = _start_up(scope, tmp_path, port, env)
        state = wait_for(lambda: (_state(run_dir).get("parts", {}).get("worker", {})
                                  .get("state") == GAVE_UP) and _state(run_dir), 90,
                         "the worker given up in supervisor.json", proc)
        worker = state["parts"]["worker"]
        assert worker["restarts"] == 2 and worker["last_exit_code"] == 2
        assert proc.poll() is None  # `concner up` itself carries on
        wait_for(lambda: _answers(health), 120, "the app answering", proc)
        app_pid = _state(run_dir)["parts"]["app"]["pid"]
        assert _state(run_dir)["parts"]["app"]["state"] == RUNNING and alive(app_pid)

        old = dict(os.environ)
        try:  # what the app (a child of `concner up`) reads
            os.environ["CONCNER_SERVICES__RUN_DIR"] = str(run_dir)
            lines = supervisor_lines(load_config(None))
        finally:
            os.environ.clear()
            os.environ.update(old)
        log = str(run_dir / "logs" / "worker.log")
        assert [ok for ok, _ in lines] == [False], lines
        text = lines[0][1]
        assert text.startswith("worker gave up after 3 crashes in 5 min (last: exit code 2)")
        assert f"see {log}; restart with `concner up`" in text
        assert "cannot import 'concner_no_such_module'" in Path(log).read_text()

        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        left = scope.remaining()
    assert proc.returncode == 0, out
    assert "worker gave up after 3 crashes" in out and "everything else stays up" in out
    assert not left and not alive(app_pid)


@pytest.mark.slow
def test_a_second_up_stops_what_a_sigkilled_up_left_and_a_third_is_refused_while_it_runs(
        tmp_path):
    port, run_dir = _free_port(), tmp_path / "run"
    health = f"http://127.0.0.1:{port}/_stcore/health"
    env = _up_env(tmp_path)
    with ProcessScope(timeout=30) as scope:
        first = _start_up(scope, tmp_path, port, env)
        wait_for(lambda: _answers(health), 120, "the first app answering", first)
        wait_for(lambda: _state(run_dir).get("status") == RUNNING, 30, "the first up running")
        orphans = {name: p["pid"] for name, p in _state(run_dir)["parts"].items()}
        first.kill()  # SIGKILL: the worker and the app (own sessions) are left running
        first.wait(timeout=10)
        assert all(alive(pid) for pid in orphans.values())

        second = _start_up(scope, tmp_path, port, env)
        wait_for(lambda: _state(run_dir).get("pid") == second.pid
                 and _state(run_dir).get("status") == RUNNING, 120, "the second up running",
                 second)
        wait_for(lambda: _answers(health), 120, "the second app answering", second)
        assert not any(alive(pid) for pid in orphans.values())
        now = _state(run_dir)["parts"]
        assert now["app"]["pid"] not in orphans.values() and alive(now["app"]["pid"])

        third = subprocess.run([sys.executable, "-m", "concner.cli", "up", "--no-argilla",
                                "--port", str(_free_port())], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60, check=False)
        assert third.returncode == 2
        assert f"`concner up` is already running (pid {second.pid}" in third.stderr

        second.send_signal(signal.SIGINT)
        out, _ = second.communicate(timeout=60)
        left = scope.remaining()
    assert second.returncode == 0, out
    assert "left running" in out and not left


def test_restart_policy_backs_off_exponentially_and_gives_up_after_the_window_fills():
    policy = RestartPolicy(backoff_s=1.0, backoff_max_s=4.0, max_restarts=3, window_s=60.0)
    part = Part("worker", log="/x/worker.log")
    waits = []
    for t in (0.0, 1.0, 3.0):
        part.died(-9, policy, now=t)
        assert part.state == RESTARTING and not part.due(t)
        waits.append(part.next_try - t)
        assert part.due(part.next_try)
        part.started(123)
    assert waits == [1.0, 2.0, 4.0] and part.restarts == 3
    part.died(1, policy, now=70.0)  # the earlier deaths left the window: back to 1 s
    assert part.state == RESTARTING and part.next_try - 70.0 == 1.0
    for t in (71.0, 72.0):
        part.started(124)
        part.died(1, policy, now=t)
        assert part.state == RESTARTING
    part.started(125)
    part.died(1, policy, now=73.0)
    assert part.state == GAVE_UP and not part.due(1000.0)
    assert part.message == ("worker gave up after 4 crashes in 60 s (last: exit code 1): see "
                            "/x/worker.log; restart with `concner up`")
    state = {"pid": os.getpid(), "status": "running",
             "parts": {"worker": part.to_dict(), "app": Part("app").to_dict()}}
    assert state_lines(state) == [(False, part.message)]
    assert state_lines({**state, "status": "stopped"}) == []


class _ArgillaWithSearchDown:
    """A stand-in for a started LocalArgilla whose search emulator stays down: its rq
    worker died once, and restarting it raises DependencyDown until ``search_back``."""

    folder = Path("/x/argilla")

    def __init__(self):
        self.search_back, self.restarts, self.worker_dead = False, 0, True

    def exited(self):
        return {"worker": -9} if self.worker_dead else {}

    def restart_part(self, part):
        from concner.errors import DependencyDown

        assert part == "worker"
        if not self.search_back:
            raise DependencyDown("Argilla's worker needs search", part=part, needs="search")
        self.restarts, self.worker_dead = self.restarts + 1, False

    def pid_of(self, part):
        return 4242

    def log_path(self, part):
        return Path(f"/x/{part}.log")


def test_a_part_waiting_for_a_dead_dependency_is_not_given_up_and_restarts_when_it_is_back(
        tmp_path):
    """The long chaos soak gave up Argilla's rq worker after one real death, because each
    restart refused while search was down counted as a crash."""
    from concner.stack.supervisor import Supervisor

    policy = RestartPolicy(backoff_s=0.01, backoff_max_s=0.02, max_restarts=2, window_s=600.0)
    logs: list[str] = []
    sup = Supervisor(policy, tmp_path / "supervisor.json", log=logs.append)
    launcher = _ArgillaWithSearchDown()
    sup.adopt_argilla(launcher)
    sup.poll()
    launcher.worker_dead = False  # its death was noticed once; from now on it only waits
    for _ in range(10):  # many more tries than max_restarts
        time.sleep(0.012)
        sup.poll()
    part = sup.parts["argilla worker"]
    assert part.state == RESTARTING and len(part.deaths) == 1, part
    assert "waits for search" in part.message
    assert sum("waits for search" in line for line in logs) == 1, logs  # said once, not per try
    saved = json.loads((tmp_path / "supervisor.json").read_text())
    assert saved["parts"]["argilla worker"]["state"] == RESTARTING
    launcher.search_back = True
    time.sleep(0.012)
    sup.poll()
    assert launcher.restarts == 1 and part.state == RUNNING and part.pid == 4242
