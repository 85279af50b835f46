"""The worker process: the Huey consumer plus a heartbeat the app can show.

``python -m workers.retrain`` and ``concner worker`` call :func:`run_worker`. It

- imports the sync-hook modules (``services.sync_modules``) and registers their hooks
  (:func:`concner.jobs.sync_hooks.load_sync_modules`),
- writes a ``worker_heartbeats`` row every ``services.heartbeat_seconds`` and, on the same
  beat, runs :func:`concner.jobs.queue.tick` (recover retrains of dead workers, re-enqueue
  queued runs, apply the retrain policy),
- runs the consumer with thread workers,
- on SIGTERM (or SIGINT) stops cleanly: a running training stops at its next step, its
  run is marked failed ("interrupted") and re-queued, the consumer waits for its threads,
  and the heartbeat row says ``stopped``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid

from huey.consumer import Consumer

log = logging.getLogger("concner.jobs.worker")


class _Consumer(Consumer):
    """Huey's consumer, with SIGTERM graceful and a hook that tells running jobs to stop."""

    def __init__(self, *args, on_stop, **kwargs):
        super().__init__(*args, graceful_signal="TERM", **kwargs)
        self._on_stop = on_stop
        self._signal_actions[signal.SIGINT] = (False, True)  # Ctrl-C: graceful as well

    def _handle_signal(self, signum, frame):
        self._on_stop()
        super()._handle_signal(signum, frame)


class Heartbeat:
    """Beats the worker row and runs housekeeping from a daemon thread."""

    def __init__(self, ctx, worker_id: str, tick):
        self.ctx, self.worker_id, self.tick = ctx, worker_id, tick
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def beat(self, status: str = "running") -> None:
        current = min(self.ctx.current_runs, default=None)
        self.ctx.store.beat_worker(self.worker_id, host=socket.gethostname(), pid=os.getpid(),
                                   status=status, current_run_id=current)

    def _run(self) -> None:
        from concner.errors import ConcnerError

        startup = True
        while True:
            try:
                self.beat()
                self.tick(self.ctx, startup=startup)
                startup = False
            except ConcnerError as exc:
                log.warning("heartbeat: %s", exc)
            except Exception:  # keep beating: the app shows a dead worker otherwise
                log.exception("heartbeat failed")
            if self.stop.wait(self.ctx.config.services.heartbeat_seconds):
                return


def run_worker(threads: int | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT; returns the exit code."""
    logging.basicConfig(level=os.environ.get("CONCNER_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # one INFO line per dataset per sync (concner.argilla); each HTTP request only at DEBUG
    http_level = logging.DEBUG if logging.getLogger().level <= logging.DEBUG else logging.WARNING
    for name in ("httpx", "httpcore", "argilla"):
        logging.getLogger(name).setLevel(http_level)
    from concner.jobs import queue
    from concner.jobs.sync_hooks import load_sync_modules

    config = queue.config()
    huey = queue.jobs().huey
    load_sync_modules(config, queue.SYNC_HOOKS)
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    queue.set_owner(worker_id)
    ctx = queue.context()
    heartbeat = Heartbeat(ctx, worker_id, queue.tick)
    heartbeat.beat("starting")
    consumer = _Consumer(huey, workers=threads or config.services.worker_threads,
                         worker_type="thread", periodic=True, max_delay=1.0,
                         on_stop=ctx.shutdown.set)
    log.info("worker %s: store %r, queue %s, hooks %s", worker_id, ctx.store,
             type(huey).__name__, queue.SYNC_HOOKS.names() or "none")
    heartbeat.thread.start()
    try:
        consumer.run()
    finally:
        heartbeat.stop.set()
        heartbeat.thread.join(timeout=30)
        heartbeat.beat("stopped")
        ctx.store.close()
    log.info("worker %s stopped", worker_id)
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    from concner.errors import ConcnerError

    parser = argparse.ArgumentParser(prog="python -m workers.retrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="consumer threads (services.worker_threads)")
    args = parser.parse_args(argv)
    try:
        return run_worker(args.threads)
    except ConcnerError as exc:
        print(f"concner worker: error: {exc}", file=sys.stderr)
        return 2
