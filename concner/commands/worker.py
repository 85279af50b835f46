"""``concner worker``: run the retraining worker (the Huey consumer with a heartbeat)."""

from __future__ import annotations

import os


def register(subparsers) -> None:
    p = subparsers.add_parser("worker", help="run the job worker (retrain, predict, evaluate, "
                                             "sync) until SIGTERM", description=__doc__)
    p.add_argument("--config", help="TOML config file (sets CONCNER_CONFIG for the worker)")
    p.add_argument("--threads", type=int, help="consumer threads (services.worker_threads)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.config:
        os.environ["CONCNER_CONFIG"] = os.path.abspath(args.config)
    from concner.jobs.worker import run_worker

    return run_worker(args.threads)
