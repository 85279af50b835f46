"""The supervisor with a real local Argilla (argilla-server 2.8 + Redis + noida-db): a part
killed with SIGKILL is started again on its own while the rest stay up, and ``concner up``
starts again after it was killed itself, and after the whole stack was.

Needs redis-server and the server's virtualenv (~/.cache/concner/argilla-venv, built once);
without them the tests skip, unless CONCNER_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prockit import ProcessScope, alive, wait_for
from test_app_up import _answers, _free_port
from test_supervisor import _state, _up_env

from concner.argilla.launcher import PARTS, LocalArgilla
from concner.argilla.processes import redis_ok
from concner.config import load_config
from concner.errors import ServiceUnavailable
from concner.stack.supervisor import RUNNING, RestartPolicy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _unavailable(reason: str):
    if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (CONCNER_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture
def local_argilla(tmp_path):
    logs: list[str] = []
    stack = LocalArgilla(tmp_path / "argilla", port=0, redis_port=0, search_port=0,
                         venv=load_config().services.argilla_venv, log=logs.append)
    try:
        status = stack.up()
    except ServiceUnavailable as exc:
        stack.down()
        _unavailable(f"cannot start a local Argilla stack here: {exc}")
    try:
        yield stack, status, logs
    finally:
        stack.down()


def _pids(folder: Path) -> dict[str, int]:
    out = {}
    for part in PARTS:
        try:
            out[part] = int((folder / "run" / f"{part}.pid").read_text())
        except (OSError, ValueError):
            pass
    return out


def test_a_sigkilled_redis_or_search_emulator_is_restarted_and_the_stack_answers(
        local_argilla, tmp_path):
    from concner.argilla.client import ArgillaIO, SpanSuggestion
    from concner.labels import Span
    from concner.sentence import Sentence
    from concner.stack.supervisor import Supervisor

    stack, status, logs = local_argilla
    io = ArgillaIO(status.url, status.api_key, retries=2, backoff_s=0.2, batch_size=64)
    name = io.ensure_dataset("sup", "target", "es", ["PER", "LOC"])
    sents = [Sentence.from_tokens(f"s{i:03d}", "es", ["Ana", "vive", "en", "Lima"],
                                  ["B-PER", "O", "O", "B-LOC"]) for i in range(6)]
    preds = {s.id: SpanSuggestion([Span(sp.start, sp.end, sp.label, 0.9) for sp in s.spans],
                              uncertainty=0.1 * i) for i, s in enumerate(sents)}
    io.push(name, sents, preds, model_version="v1")
    ranked = io.most_uncertain(name, 3)  # a query the search engine answers
    assert ranked == ["s005", "s004", "s003"]

    sup = Supervisor(RestartPolicy(backoff_s=0.2, backoff_max_s=1.0, max_restarts=3, window_s=600),
                     tmp_path / "run" / "supervisor.json", log=logs.append)
    sup.adopt_argilla(stack)
    server_pid = stack.pid_of("server")

    for part in ("redis", "search"):
        old = stack.pid_of(part)
        os.kill(old, signal.SIGKILL)

        def restarted(part=part, old=old):
            sup.poll()
            now = sup.parts[f"argilla {part}"]
            return now.state == RUNNING and now.restarts == 1 and now.pid not in (None, old)

        wait_for(restarted, 120, f"argilla {part} restarted by the supervisor")
        assert _state(tmp_path / "run")["parts"][f"argilla {part}"]["last_exit_code"] == -9
        assert stack.pid_of("server") == server_pid  # the server was left alone
        assert stack.status().answering
    assert redis_ok(stack.ports["redis"])
    assert any("rebuilding its index" in m for m in logs), logs
    # the records are back in the fresh emulator's index, in the same order
    assert wait_for(lambda: io.most_uncertain(name, 3) == ranked, 60, "search answering again")
    sup.poll()
    assert all(p.state == RUNNING for p in sup.parts.values()), sup.parts


def test_up_starts_again_after_it_was_sigkilled_and_after_the_whole_stack_was(tmp_path):
    from concner.jobs.liveness import pid_running

    if not Path(load_config().services.argilla_venv).expanduser().joinpath("bin",
                                                                          "python").exists():
        _unavailable("the Argilla server virtualenv is not built (run `concner argilla up` once)")
    port, run_dir, home = _free_port(), tmp_path / "run", tmp_path / "argilla"
    health = f"http://127.0.0.1:{port}/_stcore/health"
    env = _up_env(tmp_path, CONCNER_SERVICES__ARGILLA_URL=f"http://127.0.0.1:{_free_port()}",
                  CONCNER_SERVICES__ARGILLA_REDIS_PORT=str(_free_port()),
                  CONCNER_SERVICES__ARGILLA_SEARCH_PORT=str(_free_port()))
    argv = [sys.executable, "-m", "concner.cli", "up", "--port", str(port),
            "--argilla-home", str(home)]

    def start(scope):
        proc = scope.popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: _state(run_dir).get("pid") == proc.pid
                 and _state(run_dir).get("status") == RUNNING, 240, "concner up running", proc)
        wait_for(lambda: _answers(health), 120, "the app answering", proc)
        assert LocalArgilla(home).status().all_running
        return proc

    with ProcessScope(timeout=30) as scope:
        first = start(scope)
        parts = _pids(home)
        children = {n: p["pid"] for n, p in _state(run_dir)["parts"].items()
                    if n in ("worker", "app")}
        first.kill()  # SIGKILL of `concner up` itself: every part is left running
        first.wait(timeout=10)
        assert all(alive(pid) for pid in [*parts.values(), *children.values()])

        second = start(scope)
        assert _pids(home) == parts  # the Argilla it left was adopted, not restarted
        assert not any(alive(pid) for pid in children.values())  # its worker and app stopped
        assert _state(run_dir)["argilla"]["owned"] is True

        # now everything at once: `concner up`, the Argilla parts, the worker, the app
        everything = [second.pid, *_pids(home).values(),
                      *(p["pid"] for p in _state(run_dir)["parts"].values() if p["pid"])]
        for pid in everything:
            os.kill(pid, signal.SIGKILL)
        second.wait(timeout=10)
        wait_for(lambda: not any(pid_running(p) for p in everything), 30, "everything dead")
        time.sleep(0.5)

        third = start(scope)
        fresh = _pids(home)
        assert set(fresh) == set(PARTS) and not set(fresh.values()) & set(everything)

        third.send_signal(signal.SIGINT)
        out, _ = third.communicate(timeout=90)
        left = scope.remaining()
    assert third.returncode == 0, out
    assert not left, {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left}
    assert not any(alive(pid) for pid in fresh.values())  # the stack it owned went down too
    assert _state(run_dir)["status"] == "stopped"
