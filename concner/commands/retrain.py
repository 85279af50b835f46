"""``concner retrain NAME [--full]``: queue a retrain of a project for the worker.

Without ``--full`` the worker decides (:mod:`concner.jobs.incremental`): an incremental update
of the active model when few labels are new, a full retrain otherwise. ``--full`` forces a
full retrain from scratch (and turns an already queued retrain into a full one). The
request coalesces with a retrain that is already queued.
"""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    p = subparsers.add_parser("retrain", help="queue a retrain (incremental or --full)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="project name")
    p.add_argument("--full", action="store_true",
                   help="retrain from scratch on every label instead of updating the active "
                        "model with the new ones")
    p.add_argument("--config", help="TOML config file (store URL etc.; else CONCNER_CONFIG)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.config:
        os.environ["CONCNER_CONFIG"] = os.path.abspath(args.config)
    from concner.jobs import queue as tasks
    from concner.store import Store

    store = Store(tasks.config().services.database_url)
    try:
        run_id, created = tasks.request_retrain(store, args.name, full=args.full)
        from concner.commands.project_status import warn_not_ready

        warn_not_ready(store, args.name, tasks.config())
    finally:
        store.close()
    what = "full retrain" if args.full else "retrain (incremental when few labels are new)"
    print(f"{what}: run {run_id} "
          + ("queued" if created else "already queued (coalesced"
             + ("; it will be a full one)" if args.full else ")")))
    return 0
