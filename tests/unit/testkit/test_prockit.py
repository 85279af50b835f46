"""The whole-system tests' process scope (tests/prockit.py): nothing it started outlives it,
whichever way the ``with`` block ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from prockit import ProcessScope, alive

#: a parent that starts a child in a session of its own (as `concner up` does), then
#: sleeps or exits (leaving the child to init)
TREE = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
time.sleep(120 if sys.argv[1] == "stay" else 0)
"""


def _wait_for(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


@pytest.mark.parametrize("parent", ["stay", "exit"])
def test_a_failed_setup_stops_the_child_that_left_the_group(parent):
    with pytest.raises(RuntimeError, match="half-way"), ProcessScope(timeout=5) as scope:
        proc = scope.popen([sys.executable, "-c", TREE, parent])
        expected = 2 if parent == "stay" else 1
        pids = _wait_for(lambda: (r := scope.remaining()) and len(r) == expected and r)
        raise RuntimeError("set-up failed half-way")
    assert not [pid for pid in pids if alive(pid)]
    assert proc.returncode is not None and not scope.remaining()


def test_what_ignores_sigterm_is_killed_after_the_timeout():
    scope = ProcessScope(timeout=1)
    ignores_sigterm = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       "print('ready', flush=True); time.sleep(120)")
    proc = scope.popen([sys.executable, "-c", ignores_sigterm], stdout=subprocess.PIPE,
                       text=True)
    assert proc.stdout.readline() == "ready\n"
    started = time.monotonic()
    scope.stop()
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= time.monotonic() - started < 10
