"""Installing and setting up argilla-server for :mod:`concner.argilla.launcher`: its own
virtualenv (argilla-server's pins clash with the app's), the search emulator's binary in
it, the command line and environment of each part of the stack, running the server's CLI,
and the owner user made on first start (its credentials kept mode 0600, never logged). No
``argilla`` import: the server runs from that virtualenv."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from concner.errors import ServiceUnavailable

__all__ = ["OWNER", "VENV_REQUIREMENTS", "WORKSPACE", "ensure_server_venv", "noida_binary",
           "owner_steps", "part_command", "read_json", "run_server_cli", "server_env"]

#: What the server's virtualenv holds (OFFLINE.md: click<8.2, and requests for the SDK).
VENV_REQUIREMENTS = ("argilla-server==2.8.0", "argilla==2.8.0", "requests", "click<8.2",
                     "noida-db==0.2.3")
OWNER = "owner"
WORKSPACE = "argilla"


def read_json(path: Path) -> dict | None:
    """The JSON in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_server_venv(venv: Path, log: Callable[[str], None]) -> Path:
    """Create the server's virtualenv at ``venv`` once (~70 s); reuse it when its marker
    matches :data:`VENV_REQUIREMENTS`."""
    python = venv / "bin" / "python"
    marker = venv / ".concner-requirements"
    wanted = "\n".join(VENV_REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return venv
    log(f"argilla: creating the server virtualenv in {venv} (once, ~70 s)")
    tmp = venv.with_name(venv.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(tmp)],
             [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q",
              "--disable-pip-version-check", *VENV_REQUIREMENTS]]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ServiceUnavailable(
                f"could not build the Argilla server virtualenv ({' '.join(cmd[:4])} ...): "
                f"{done.stderr.strip()[-800:]}\nCheck that PyPI is reachable, then retry."
            )
    (tmp / ".concner-requirements").write_text(wanted)
    if marker.exists() and marker.read_text() == wanted:  # another process was faster
        shutil.rmtree(tmp, ignore_errors=True)
        return venv
    if venv.exists():  # stale (other pins): replace it
        shutil.rmtree(venv)
    os.replace(tmp, venv)  # the venv runs via `bin/python -m`, so a rename is safe
    return venv


def noida_binary(venv: Path) -> Path:
    """The ``noida-db`` search emulator installed in the server's virtualenv."""
    found = sorted(venv.glob("lib/python*/site-packages/noida_db/noida-db"))
    if not found:
        raise ServiceUnavailable(f"noida-db is missing from {venv}; delete that folder "
                                 "and run `concner argilla up` again to rebuild it")
    return found[0]


def server_env(folder: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of the stack's processes: this one's, without ``ARGILLA_*``,
    ``PYTHON*`` and ``VIRTUAL_ENV``, plus the server's settings (data in ``folder``, Redis
    and the search engine on ``ports``) and the Hugging Face hub offline."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARGILLA_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        ARGILLA_HOME_PATH=str(folder / "home"),
        ARGILLA_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'argilla.db'}",
        ARGILLA_REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",
        ARGILLA_SEARCH_ENGINE="elasticsearch",
        ARGILLA_ELASTICSEARCH=f"http://127.0.0.1:{ports['search']}",
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


def part_command(part: str, *, venv: Path, folder: Path, ports: dict[str, int]) -> list[str]:
    """The command line of ``part`` (``redis``, ``search``, ``server`` or ``worker``) of the
    stack in ``folder``, the server's from the virtualenv ``venv``."""
    py = str(venv / "bin" / "python")
    if part == "redis":
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable(
                "redis-server is not installed; Argilla needs it. Install it with "
                "`apt-get install redis-server` (Debian/Ubuntu; `brew install redis` on macOS)"
            )
        (folder / "redis").mkdir(exist_ok=True)
        return [binary, "--bind", "127.0.0.1", "--port", str(ports["redis"]),
                "--dir", str(folder / "redis"), "--daemonize", "no",
                "--save", "60 1", "--appendonly", "no"]
    if part == "search":
        return [str(noida_binary(venv)), "start", "--data-dir", str(folder / "search"),
                "--only", "elasticsearch", "--elasticsearch-port", str(ports["search"])]
    if part == "server":
        return [py, "-m", "argilla_server", "start", "--host", "127.0.0.1",
                "--port", str(ports["server"])]
    return [py, "-m", "argilla_server", "worker", "--num-workers", "1"]


def run_server_cli(python: Path, steps: list[list[str]], what: str, *, env: dict[str, str],
                   cwd: Path) -> None:
    """Run ``python -m argilla_server <args>`` for each step in ONE process (importing
    the server takes most of the time); arguments travel on stdin, not in ``ps``."""
    script = ("import json, sys\nfrom argilla_server.cli.__main__ import app\n"
              "for args in json.load(sys.stdin):\n    app(args, standalone_mode=False)\n")
    done = subprocess.run([str(python), "-c", script], input=json.dumps(steps),
                          env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise ServiceUnavailable(f"Argilla {what} failed: {done.stderr.strip()[-800:]}")


def owner_steps(credentials_path: Path) -> list[list[str]]:
    """The server CLI step creating the owner on first start (no credentials at
    ``credentials_path`` yet): a random password and API key, saved there mode 0600."""
    if read_json(credentials_path):
        return []
    creds = {"username": OWNER, "password": secrets.token_urlsafe(18),
             "api_key": "concner." + secrets.token_urlsafe(32)}
    fd = os.open(credentials_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(creds, f)
    return [["database", "users", "create", "--first-name", "ConCNER", "--username", OWNER,
             "--password", creds["password"], "--api-key", creds["api_key"],
             "--role", "owner", "--workspace", WORKSPACE]]
