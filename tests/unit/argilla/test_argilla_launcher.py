"""The local Argilla launcher without starting Argilla: status, down, missing Redis, CLI.

(Starting the real stack is covered by test_argilla_integration.py.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from concner.argilla.launcher import PARTS, VENV_REQUIREMENTS, LocalArgilla
from concner.cli import main
from concner.config import ServicesConfig
from concner.errors import ConfigError, ServiceUnavailable


def fake_venv(path):
    """A folder that passes ensure_venv's check, so no virtualenv is built."""
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").symlink_to(sys.executable)
    (path / ".concner-requirements").write_text("\n".join(VENV_REQUIREMENTS))
    return path


def alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_status_of_a_new_folder_reports_every_part_stopped(tmp_path):
    status = LocalArgilla(tmp_path / "a", port=0).status()
    assert [p.name for p in status.parts] == list(PARTS)
    assert not any(p.running or p.pid for p in status.parts)
    assert not status.all_running and status.api_key is None


def test_down_stops_the_whole_process_group_and_clears_pid_files(tmp_path):
    stack = LocalArgilla(tmp_path, port=0)
    (tmp_path / "run").mkdir()
    # $0 = "argilla_server" puts the worker's mark in the command line
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & echo $! > child.pid; wait", "argilla_server"],
                            cwd=tmp_path, start_new_session=True)
    (tmp_path / "run" / "worker.pid").write_text(str(proc.pid))
    for _ in range(50):
        if (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text().strip():
            break
        time.sleep(0.1)
    child = int((tmp_path / "child.pid").read_text())
    assert alive(proc.pid) and alive(child)
    assert stack.down() == ["worker"]
    proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    assert not (tmp_path / "run" / "worker.pid").exists()
    assert stack.down() == []


def test_a_pid_file_naming_someone_elses_process_is_never_signalled(tmp_path):
    (tmp_path / "run").mkdir()
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)  # not an Argilla part
    try:
        (tmp_path / "run" / "server.pid").write_text(str(other.pid))
        stack = LocalArgilla(tmp_path, port=0)
        assert not next(p for p in stack.status().parts if p.name == "server").running
        assert stack.down() == []
        assert other.poll() is None  # still running
    finally:
        other.kill()
        other.wait()


def test_a_stale_pid_file_counts_as_stopped(tmp_path):
    (tmp_path / "run").mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "run" / "server.pid").write_text(str(dead.pid))
    stack = LocalArgilla(tmp_path, port=0)
    assert not next(p for p in stack.status().parts if p.name == "server").running
    assert stack.down() == []
    assert not (tmp_path / "run" / "server.pid").exists()


def test_missing_redis_server_says_how_to_install_it(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    stack = LocalArgilla(tmp_path / "data", venv=fake_venv(tmp_path / "venv"), port=0,
                         redis_port=0, search_port=0, log=lambda m: None)
    with pytest.raises(ServiceUnavailable, match="apt-get install redis-server"):
        stack.up()
    assert not any(p.running for p in stack.status().parts)


def test_from_config_serves_loopback_urls_only(tmp_path):
    stack = LocalArgilla.from_config(ServicesConfig(argilla_url="http://127.0.0.1:6911"),
                                     str(tmp_path))
    assert stack.url == "http://127.0.0.1:6911" and stack.folder == tmp_path.resolve()
    with pytest.raises(ConfigError, match="127.0.0.1"):
        LocalArgilla.from_config(ServicesConfig(argilla_url="https://argilla.example.org"))


def test_cli_status_exit_code_and_report(tmp_path, capsys):
    assert main(["argilla", "status", "--folder", str(tmp_path / "none")]) == 1
    out = capsys.readouterr().out
    assert all(f"{part}" in out for part in PARTS) and out.count("stopped") == len(PARTS)
    assert main(["argilla", "down", "--folder", str(tmp_path / "none")]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_a_search_emulator_that_dies_on_start_is_started_once_more_on_a_new_port(tmp_path,
                                                                              monkeypatch):
    from concner.argilla import launcher

    logs: list[str] = []
    stack = LocalArgilla(tmp_path / "data", venv=fake_venv(tmp_path / "venv"), port=0,
                         redis_port=0, search_port=0, log=logs.append)
    for sub in ("run", "logs"):
        (stack.folder / sub).mkdir(parents=True, exist_ok=True)
    stack._auto_ports, stack.ports["search"], stack.start_timeout_s = {"search"}, 1111, 20
    commands = iter([[sys.executable, "-c", "import sys; sys.exit(3)"],
                     [sys.executable, "-c", "import time; time.sleep(30)"]])
    monkeypatch.setattr(stack, "_command", lambda part: next(commands))
    monkeypatch.setattr(launcher, "_CMDLINE_MARK", {**launcher._CMDLINE_MARK, "search": b"-c"})
    monkeypatch.setattr(stack, "_ready", lambda part: stack._alive(part)
                        and "sleep" in stack._procs[part].args[-1])
    try:
        stack._start_part("search")
        assert stack._alive("search")
        assert stack.ports["search"] != 1111  # an automatic port is chosen afresh
        assert any("search did not come up (it stopped running" in m for m in logs), logs
    finally:
        stack._stop_part("search")
    assert not stack._alive("search")


def test_a_search_emulator_that_never_comes_up_fails_after_the_second_try(tmp_path,
                                                                           monkeypatch):
    from concner.argilla import launcher

    stack = LocalArgilla(tmp_path / "data", venv=fake_venv(tmp_path / "venv"), port=0,
                         redis_port=0, search_port=4321, log=lambda m: None)
    for sub in ("run", "logs"):
        (stack.folder / sub).mkdir(parents=True, exist_ok=True)
    stack._auto_ports, stack.start_timeout_s = set(), 20
    spawned = []
    monkeypatch.setattr(stack, "_command", lambda part: spawned.append(part) or
                        [sys.executable, "-c", "import sys; sys.exit(4)"])
    monkeypatch.setattr(launcher, "_CMDLINE_MARK", {**launcher._CMDLINE_MARK, "search": b"-c"})
    monkeypatch.setattr(stack, "_ready", lambda part: False)
    with pytest.raises(ServiceUnavailable, match=r"search did not come up \(it stopped running"):
        stack._start_part("search")
    assert spawned == ["search", "search", "search"]
    assert stack.ports["search"] == 4321  # a port the user chose is kept


def test_a_search_emulator_that_runs_but_never_answers_is_replaced_not_waited_on(tmp_path,
                                                                                  monkeypatch):
    """What CI saw: the emulator printed its banner and then answered nothing. The stuck
    process is killed and a new one started on a new port, within the short search timeout
    rather than the stack's three minutes."""
    from concner.argilla import launcher

    logs: list[str] = []
    stack = LocalArgilla(tmp_path / "data", venv=fake_venv(tmp_path / "venv"), port=0,
                         redis_port=0, search_port=0, log=logs.append)
    for sub in ("run", "logs"):
        (stack.folder / sub).mkdir(parents=True, exist_ok=True)
    stack._auto_ports, stack.ports["search"] = {"search"}, 1111
    monkeypatch.setattr(launcher, "_SEARCH_READY_S", 1.0)
    stuck = "import time; time.sleep(60)  # stuck"
    commands = iter([[sys.executable, "-c", stuck], [sys.executable, "-c", "import time; time.sleep(60)"]])
    monkeypatch.setattr(stack, "_command", lambda part: next(commands))
    monkeypatch.setattr(launcher, "_CMDLINE_MARK", {**launcher._CMDLINE_MARK, "search": b"-c"})
    monkeypatch.setattr(stack, "_ready", lambda part: "stuck" not in stack._procs[part].args[-1])
    try:
        started = time.monotonic()
        stack._start_part("search")
        first_pid_gone = not any("stuck" in p.args[-1] for p in stack._procs.values())
        assert time.monotonic() - started < 15  # not start_timeout_s (180 s)
        assert stack._alive("search") and first_pid_gone
        assert stack.ports["search"] != 1111
        assert any("no answer within 1 s; port 1111 is not open; process state S" in m
                   for m in logs), logs
    finally:
        stack._stop_part("search")
    assert not stack._alive("search")


def test_a_part_this_object_started_is_alive_whatever_its_proc_title_says(tmp_path, monkeypatch):
    """redis rewrites its process title after start; with a cold disk cache CI read an empty
    /proc/<pid>/cmdline for a moment and took a running redis for a dead one. A process this
    object started is judged by its Popen; one known from a pid file only still needs its
    command line to match (that pid may be someone else's by now)."""
    from concner.argilla import launcher

    venv = fake_venv(tmp_path / "venv")
    stack = LocalArgilla(tmp_path / "data", venv=venv, port=0, redis_port=0, search_port=0,
                         log=lambda m: None)
    for sub in ("run", "logs"):
        (stack.folder / sub).mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(stack, "_command", lambda part: [sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(launcher, "_CMDLINE_MARK", {**launcher._CMDLINE_MARK, "redis": b"no-such-title"})
    stack._spawn("redis")
    pid = stack._procs["redis"].pid
    try:
        assert stack._alive("redis")
        stranger = LocalArgilla(tmp_path / "data", venv=venv, log=lambda m: None)
        assert not stranger._alive("redis") and stranger.down() == []  # not signalled
        assert stack._alive("redis")
        assert stack.down() == ["redis"]
        assert not stack._alive("redis")
        assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_down_marks_the_search_index_clean_only_when_it_exited_when_asked(tmp_path, monkeypatch,
                                                                          ignores_sigterm):
    """The emulator saves its index on SIGTERM: down() leaves the marker that spares the next
    start a reindex only then; one that must be SIGKILLed after the grace period saved nothing."""
    from concner.argilla import launcher

    stack = LocalArgilla(tmp_path / "data", venv=fake_venv(tmp_path / "venv"), port=0,
                         redis_port=0, search_port=0, log=lambda m: None)
    for sub in ("run", "logs"):
        (stack.folder / sub).mkdir(parents=True, exist_ok=True)
    body = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
            if ignores_sigterm else "import time; time.sleep(60)")
    monkeypatch.setattr(stack, "_command", lambda part: [sys.executable, "-c", body])
    monkeypatch.setattr(launcher, "_STOP_GRACE_S", 1.0)
    stack._spawn("search")
    time.sleep(0.5)  # let the child install its handler
    assert stack.down() == ["search"]
    assert not stack._alive("search") and not stack._pidfile("search").exists()
    assert (stack.folder / "run" / "search-clean").exists() is (not ignores_sigterm)


def test_status_with_a_stack_json_left_by_an_earlier_run(tmp_path, capsys):
    """Every start writes stack.json; reading it back used to ask _alive before the object
    had its process table (AttributeError '_procs'), so `status`, and any second `up`,
    crashed once a stack had ever run in the folder."""
    (tmp_path / "run").mkdir()
    (tmp_path / "stack.json").write_text('{"ports": {"server": 6123, "redis": 6124, '
                                         '"search": 6125}}')
    assert main(["argilla", "status", "--folder", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count("stopped") == len(PARTS)
    # nothing runs: the ports asked for, not the saved ones
    assert LocalArgilla(tmp_path, port=6900).ports["server"] == 6900
    # a part of the earlier run still runs: its stack keeps the saved ports
    proc = subprocess.Popen(["sh", "-c", "sleep 60", "argilla_server"], start_new_session=True)
    try:
        (tmp_path / "run" / "worker.pid").write_text(str(proc.pid))
        stack = LocalArgilla(tmp_path, port=6900)
        assert stack.ports == {"server": 6123, "redis": 6124, "search": 6125}
        assert main(["argilla", "status", "--folder", str(tmp_path)]) == 1
        out = capsys.readouterr().out
        assert f"worker  answering (pid {proc.pid})" in out
    finally:
        proc.kill()
        proc.wait()


def _leftover(tmp_path, script: str, cmdline_start: bytes) -> int:
    """Start ``script`` as a fake worker part whose background child is left behind when
    the part is SIGKILLed; return the child's pid once it has exec'd ``cmdline_start``."""
    (tmp_path / "child.pid").unlink(missing_ok=True)
    lead = subprocess.Popen(["sh", "-c", script + " & echo $! > child.pid; wait", "argilla_server"],
                            cwd=tmp_path, start_new_session=True)
    (tmp_path / "run" / "worker.pid").write_text(str(lead.pid))
    deadline = time.monotonic() + 10
    child = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            child = int((tmp_path / "child.pid").read_text())
            if Path(f"/proc/{child}/cmdline").read_bytes().startswith(cmdline_start):
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"the fake part's child did not start {cmdline_start!r}")
    lead.kill()
    lead.wait()
    assert alive(child)
    return child


def test_up_kills_what_a_dead_part_left_in_its_process_group(tmp_path):
    """argilla-server's worker forks a work horse; SIGKILL of the worker alone leaves it
    running. The next start kills it (it has the part's command line and process group)."""
    (tmp_path / "run").mkdir()
    # a child without the part's mark is someone else's (the group id may be reused): kept
    child = _leftover(tmp_path, "sleep 60", b"sleep")
    LocalArgilla(tmp_path, port=0)._stop_unanswering(wait_s=0)
    assert alive(child) and not (tmp_path / "run" / "worker.pid").exists()
    os.kill(child, 9)
    # a leftover that is the part: killed
    child = _leftover(tmp_path, f"{sys.executable} -c 'import time; time.sleep(60)' argilla_server",
                      sys.executable.encode())
    LocalArgilla(tmp_path, port=0)._stop_unanswering(wait_s=0)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
