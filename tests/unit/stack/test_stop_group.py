"""stop_group returns only when every process of the group is gone, not just its leader."""

from __future__ import annotations

import os
import subprocess
import time

from prockit import alive

from concner.stack.processes import group_alive, stop_group


def test_a_member_that_ignores_sigterm_outliving_its_leader_is_killed_before_return(tmp_path):
    pid_file = tmp_path / "member.pid"
    # the leader exits on SIGTERM at once; the member it started ignores SIGTERM
    script = (f"(trap '' TERM; echo $BASHPID > {pid_file}; exec sleep 60) & "
              "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    leader = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    member = int(pid_file.read_text())
    assert os.getpgid(member) == leader.pid
    started = time.monotonic()
    stop_group(leader.pid, grace=1.0, name="test group")
    assert time.monotonic() - started >= 1.0  # it waited for the member, then killed it
    assert not alive(member)
    assert not group_alive(leader.pid)
    assert leader.poll() is not None


def test_a_group_that_stops_on_sigterm_is_not_killed(capsys):
    leader = subprocess.Popen(["bash", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"],
                              start_new_session=True)
    time.sleep(0.3)
    started = time.monotonic()
    stop_group(leader.pid, grace=10.0, name="test group")
    assert time.monotonic() - started < 5
    assert "killing it" not in capsys.readouterr().err
    assert not group_alive(leader.pid)
