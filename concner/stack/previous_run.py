"""What an earlier ``concner up`` left behind, cleared before a new one starts: its state
file says whether it still runs (then the new one refuses), and which worker and app it
left running when it was killed (they are stopped); its app's port may take a while to be
released."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from concner.errors import ConcnerError
from concner.stack.processes import cmdline, stop_group
from concner.stack.supervisor import read_state

__all__ = ["CHILD_MARK", "ORPHAN_GRACE_SECONDS", "PORT_RELEASE_SECONDS", "clear_previous_run",
           "port_in_use"]

#: what the command line of each child of an earlier `concner up` contains
CHILD_MARK = {"worker": b"workers.retrain", "app": b"streamlit"}
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
            and b"concner" in cmdline(pid) and b"up" in cmdline(pid).split(b"\0")):
        raise ConcnerError(f"`concner up` is already running (pid {pid}, state in "
                           f"{state_file}); stop it with Ctrl-C or `kill {pid}` first")
    for name, part in (previous.get("parts") or {}).items():
        child_pid = part.get("pid")
        mark = CHILD_MARK.get(name)
        if (mark and isinstance(child_pid, int) and pid_running(child_pid)
                and mark in cmdline(child_pid)):
            print(f"concner up: stopping the {name} (pid {child_pid}) an earlier `concner up` "
                  "left running", flush=True)
            stop_group(child_pid, grace, name)
    return previous


#: a SIGKILLed app's leader thread shows as a zombie while its other threads, which share
#: its open sockets, are still exiting: on a busy machine its port stays taken for seconds
PORT_RELEASE_SECONDS = 20.0


def port_in_use(host: str, port: int, *, wait_s: float = 0.0) -> bool:
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
