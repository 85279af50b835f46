"""Looking at local processes and ports, for :mod:`concner.argilla.launcher`: is a pid alive
(and not a zombie), does its command line say what it is, which processes are in its group,
what ``/proc`` says about one that does not answer, and do its port, HTTP endpoint or Redis
answer on 127.0.0.1. Linux ``/proc``; no ``argilla`` import."""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "cmdline_has",
    "free_port",
    "group_members",
    "http_ok",
    "pid_alive",
    "port_accepts",
    "process_state",
    "redis_ok",
    "wait_gone",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not; our own dead child is reaped on the way)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own dead child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def cmdline_has(pid: int, mark: bytes) -> bool:
    """Does ``pid``'s command line contain ``mark``? redis rewrites its process title
    after start, and on a slow machine ``/proc/<pid>/cmdline`` reads empty for a moment
    then, so an empty read is tried again before the answer is no."""
    for _ in range(20):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if cmdline:
            return mark in cmdline
        time.sleep(0.05)
    return False


#: local health checks never go through an HTTP proxy from the environment
_LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200 (no proxy)."""
    try:
        with _LOCAL_HTTP.open(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to exit; True if it did."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not pid_alive(pid)


def port_accepts(port: int) -> bool:
    """Whether 127.0.0.1:``port`` accepts a TCP connection (within a second)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def process_state(pid: int) -> str:
    """``/proc`` facts about a process that does not answer: its state letter (R running,
    S sleeping, D waiting on I/O, T stopped), its thread count and the kernel function it
    waits in, for the error message."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = next((line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("Threads:")), "?")
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
    except (OSError, IndexError):
        return "no /proc entry"
    return f"state {state}, {threads} threads, waiting in {wchan}"


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (from ``/proc``)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def redis_ok(port: int) -> bool:
    """Whether Redis on 127.0.0.1:``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
