"""Sync modules register their hooks explicitly (concner/jobs/sync_hooks.py), and the
queue module reads and builds nothing at import (concner/jobs/queue.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from concner.config import load_config
from concner.errors import ConfigError
from concner.jobs.sync_hooks import SyncHooks, load_sync_modules

ROOT = Path(__file__).resolve().parents[3]


def _config(*modules: str):
    return load_config(env={"CONCNER_SERVICES__SYNC_MODULES": ",".join(modules)})


@pytest.mark.parametrize("module", ["concner.argilla.sync", "concner.argilla_sync"])
def test_the_argilla_sync_module_and_its_old_name_register_the_argilla_hook(module):
    from concner.argilla.sync import sync_hook

    hooks = SyncHooks()
    load_sync_modules(_config(module), hooks)
    assert hooks.items() == [("argilla", sync_hook)]


def test_a_sync_module_without_the_register_function_is_a_config_error():
    hooks = SyncHooks()
    with pytest.raises(ConfigError, match=r"'concner.labels' does not define "
                                          r"register_sync_hooks\(registry\); add `def"):
        load_sync_modules(_config("concner.labels"), hooks)
    with pytest.raises(ConfigError, match="cannot import 'concner.nope'"):
        load_sync_modules(_config("concner.nope"), hooks)
    assert not hooks


def test_importing_the_queue_reads_no_config_and_builds_no_huey(tmp_path):
    """The config and the Huey come on first use; the jobs keep their Huey names (under
    this module, and under concner.tasks, where older versions queued them)."""
    queue_db = tmp_path / "q" / "queue.db"
    code = textwrap.dedent(f"""
        import os
        import concner.jobs.queue as queue
        from concner.errors import ConfigError
        assert not os.path.exists({str(queue_db.parent)!r})
        try:
            queue.config()
        except ConfigError as exc:
            assert "does not exist" in str(exc)
        else:
            raise AssertionError("the config file was not read")
        os.environ.pop("CONCNER_CONFIG")
        huey = queue.jobs().huey
        assert os.path.exists({str(queue_db)!r})
        assert queue.jobs().huey is huey
        print(" ".join(sorted(huey._registry._registry)))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), CONCNER_CONFIG=str(tmp_path / "missing.toml"),
               CONCNER_SERVICES__QUEUE_PATH=str(queue_db))
    env.pop("CONCNER_REDIS_URL", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    names = ("retrain", "predict_pool", "evaluate", "translate", "sync")
    assert out.stdout.split() == sorted(
        [f"concner.jobs.queue.{n}" for n in (*names, "sync_all", "run_shards")]
        + [f"concner.tasks.{n}" for n in names])


def _sync_context(store, tmp_path):
    from storekit import make_project

    from concner.jobs.context import JobContext
    from concner.jobs.registry import ModelRegistry

    make_project(store, "p", "enc", n_source=4, n_dev=2, n_pool=4)
    return JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                      "test-worker")


def _follow_ups(huey, known) -> list:
    return [t for t in huey.scheduled() if t.id not in known]


def test_a_sync_that_could_not_read_everything_yet_schedules_one_follow_up(store, tmp_path,
                                                                           monkeypatch):
    """Answers committed within Argilla's clock lag are not searchable yet: the sync that
    missed them asks to be run again when they are (a "Sync now" right after the answers
    must not leave them to the next periodic sync, minutes later). The follow-up asks for
    no other, so answers arriving all the time do not make the worker sync in a loop."""
    from datetime import UTC, datetime, timedelta

    from concner.jobs import queue
    from concner.jobs.sync_hooks import SyncReport

    ctx = _sync_context(store, tmp_path)
    calls = []

    def hook(store_, project, config):
        calls.append(project)
        return [SyncReport("p-source-en", n_new=0, recheck_after=3.0),
                SyncReport("p-target-de", n_new=1, recheck_after=None)]

    monkeypatch.setattr(queue, "SYNC_HOOKS", SyncHooks({"fake": hook}))
    with queue.running_here(ctx) as q:
        known = {t.id for t in q.huey.scheduled()}
        outcomes = queue.sync_job("p")
        assert [o["recheck_after"] for o in outcomes] == [3.0, None]
        (follow_up,) = _follow_ups(q.huey, known)
        assert follow_up.name.endswith("sync") and follow_up.args == ("p", True)
        now = datetime.now(UTC).replace(tzinfo=None)
        assert now < follow_up.eta <= now + timedelta(seconds=3.5)
        # the follow-up itself (recheck=True) schedules nothing more
        known.add(follow_up.id)
        queue.sync_job(*follow_up.args)
        assert _follow_ups(q.huey, known) == []
        assert calls == ["p", "p"]


def test_a_sync_that_read_everything_schedules_nothing(store, tmp_path, monkeypatch):
    from concner.jobs import queue
    from concner.jobs.sync_hooks import SyncReport

    ctx = _sync_context(store, tmp_path)
    hooks = SyncHooks({"fake": lambda store_, project, config: [SyncReport("p-source-en")]})
    monkeypatch.setattr(queue, "SYNC_HOOKS", hooks)
    with queue.running_here(ctx) as q:
        known = {t.id for t in q.huey.scheduled()}
        queue.sync_job("p")
        assert _follow_ups(q.huey, known) == []
