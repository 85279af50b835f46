"""The child processes ``concner up`` runs (the queue worker, the app): each in its own
process group, its output copied to the terminal and to its log file, stopped with SIGTERM
to the group and SIGKILL after a grace period."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["Child", "cmdline", "copy_output", "stop_group"]


def cmdline(pid: int) -> bytes:
    """``pid``'s command line (NUL-separated; empty when it cannot be read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is left. A SIGKILLed multi-threaded leader
    shows as a zombie while its other threads (which share its sockets) still exit, so the
    leader's state alone says too little; the group is gone once its last member is reaped."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap our own child, which ends its group membership
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, grace: float, name: str) -> None:
    """SIGTERM to process group ``pid``, SIGKILL after ``grace`` seconds; returns once no
    process of the group is left (or 10 s after the SIGKILL)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(pid):
        print(f"concner up: {name} did not stop in {grace:.0f} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10  # gone, and its port free, before we go on
        while group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def copy_output(stream, log_path: Path) -> None:
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
        threading.Thread(target=copy_output, args=(self.proc.stdout, self.log), daemon=True,
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
