"""Subprocesses of the whole-system tests that never outlive them.

A :class:`ProcessScope` starts each process in a session of its own and tags it (and so
every process it starts) through an environment variable. :meth:`ProcessScope.stop` (run
on every way out of ``with ProcessScope() as scope:``: set-up failure, test failure,
teardown, Ctrl-C) sends SIGTERM to the process group of each process it started and of
each tagged process, even one that moved to a session of its own (``concner up`` starts
its worker and app that way) or lost its parent, waits up to ``timeout`` seconds, then
sends SIGKILL to whatever is left, and reaps its own children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Self

TAG = "CONCNER_TEST_SCOPE"


def _state(pid: int) -> str | None:
    """The process state letter (``Z`` for a zombie), or None when there is no such pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z")


def tagged(tag: str) -> set[int]:
    """Live processes whose environment carries ``TAG=tag`` (never this process)."""
    needle = f"{TAG}={tag}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0") and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


class ProcessScope:
    def __init__(self, timeout: float = 30.0):
        if TAG in os.environ:
            raise RuntimeError(f"{TAG} is set in this process: stop() would signal it")
        self.tag = uuid.uuid4().hex
        self.timeout = timeout
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def popen(self, args, *, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """``subprocess.Popen`` in a new session, with the scope's tag in its environment."""
        env = dict(os.environ if env is None else env, **{TAG: self.tag})
        proc = subprocess.Popen(args, env=env, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def remaining(self) -> set[int]:
        """Live processes of this scope (its own children and every tagged process)."""
        for proc in self.procs:
            proc.poll()  # reap the ones that exited, so they do not count
        return {p.pid for p in self.procs if p.returncode is None and alive(p.pid)} | \
            tagged(self.tag)

    def _signal(self, pids: set[int], sig: int) -> None:
        for pid in pids:
            try:
                group = os.getpgid(pid)
                if group != os.getpgrp():  # never this process's own group
                    os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """SIGTERM to every process of the scope (their process groups), SIGKILL to what is
        left after ``timeout`` seconds; then reap the children this scope started."""
        pids = self.remaining()
        self._signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + self.timeout
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = self.remaining()
        if pids:
            self._signal(pids, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.remaining() and time.monotonic() < deadline:
                time.sleep(0.1)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # cannot happen after SIGKILL, but never hang
                pass


def wait_for(cond, timeout: float, what: str, proc=None, interval: float = 0.3):
    """``cond()``'s first truthy value within ``timeout`` s, else fail saying ``what``
    (and fail at once, with its output, when ``proc`` exited meanwhile)."""
    from pytest import fail

    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            fail(f"concner up exited ({proc.returncode}) while waiting for {what}:\n"
                 f"{proc.stdout.read() if proc.stdout else ''}")
        if time.monotonic() > deadline:
            fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
