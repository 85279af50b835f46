"""``concner project status``, ``next`` and ``auto-retrain``: what a project holds, what
to ask next (the stored ask order, :mod:`concner.active.ask_order`) and whether the worker
may retrain it by itself, with the readiness checklist."""

from __future__ import annotations

import json
import sys

from concner.commands.common import config_from_args, open_store


def status(store, name: str, *, worker_timeout_s: float | None = None) -> dict:
    """Everything ``status`` prints, as plain data. A worker's ``status`` is what
    :mod:`concner.jobs.liveness` makes of its heartbeat row (``running``, ``dead``, ``silent``,
    ``stopped``; the app's health block uses the same judge); ``reported`` is what the row
    itself says. ``worker_timeout_s``: ``services.lock_stale_seconds`` by default."""
    from concner.jobs import liveness

    project = store.get_project(name)
    timeout = liveness.DEFAULT_TIMEOUT_S if worker_timeout_s is None else worker_timeout_s
    runs = store.runs(name, limit=10)
    active = store.active_model_version(name)
    metrics = store.metrics(name)
    latest_run = max((m.run_id for m in metrics), default=None)
    lock = store.lock_state(name)
    return {
        "project": {"name": project.name, "source": project.source_lang,
                    "targets": project.target_langs,
                    "labels": project.label_schema["entity_types"], "encoder": project.encoder},
        "counts": store.counts(name),
        "lock": {"run_id": lock.run_id, "queued_run_id": lock.queued_run_id,
                 "heartbeat_at": lock.heartbeat_at and lock.heartbeat_at.isoformat()},
        "runs": [{"id": r.id, "kind": r.kind, "status": r.status, "reason": r.reason,
                  "label_counts": {k: v for k, v in (r.label_counts or {}).items()
                                   if k in ("source", "translated", "target")},
                  "stage": (r.progress or {}).get("stage"),
                  "step": (r.progress or {}).get("step"), "total": (r.progress or {}).get("total"),
                  "error": r.error} for r in runs],
        "active_model": None if active is None else {
            "version": active.version, "path": active.path, "mean_f1": active.mean_f1,
            "pinned": project.pinned_version_id == active.id},
        "metrics": [{"run": m.run_id, "lang": m.language, "f1": m.f1, "support": m.support}
                    for m in metrics if m.run_id == latest_run],
        "workers": [{"id": w.worker_id, "status": judged.state, "alive": judged.alive,
                     "reported": w.status, "host": w.host, "pid": w.pid,
                     "last_seen": w.last_seen.isoformat()}
                    for w in store.workers()[:5]
                    for judged in [liveness.judge(w, timeout_s=timeout)]],
    }


def run_status(args) -> int:
    config = config_from_args(args)
    from concner.jobs.readiness import project_readiness

    store = open_store(config)
    info = status(store, args.name, worker_timeout_s=config.services.lock_stale_seconds)
    readiness = project_readiness(store, args.name, config)
    info["auto_retrain"] = store.get_project(args.name).auto_retrain
    info["readiness"] = {"ready": readiness.ready, "requirements": [
        {"key": r.key, "title": r.title, "met": r.met, "have": r.have, "todo": r.todo}
        for r in readiness.requirements]}
    if args.json:
        json.dump(info, sys.stdout, indent=2, default=str)
        print()
        return 0
    p = info["project"]
    print(f"project {p['name']}: {p['source']} -> {', '.join(p['targets'])}; labels "
          f"{', '.join(p['labels'])}; encoder {p['encoder']}")
    for row in info["counts"]["sentences"]:
        print(f"  {row['role']:<11} {row['split']:<5} {row['lang']:<4} {row['sentences']:>7} "
              f"sentences, {row['labelled']:>7} labelled")
    print(f"  annotation versions: {info['counts']['annotations']}; translation links: "
          f"{info['counts']['translation_links'] or 'none'}")
    print_readiness(readiness, info["auto_retrain"])
    am = info["active_model"]
    if am is None:
        print("active model: none")
    else:
        f1 = "n/a" if am["mean_f1"] is None else f"{100 * am['mean_f1']:.2f}"
        pinned = ", pinned: concner model unpin to return to the promotion rule" \
            if am["pinned"] else ""
        print(f"active model: v{am['version']} (mean dev F1 {f1}{pinned}) at {am['path']}")
    for m in info["metrics"]:
        print(f"  run {m['run']} {m['lang']}: F1 {100 * m['f1']:.2f} (support {m['support']})")
    for r in info["runs"]:
        where = f" {r['stage']} {r['step']}/{r['total']}" if r["status"] == "running" else ""
        counts = ", ".join(f"{k} {v}" for k, v in r["label_counts"].items())
        print(f"run {r['id']} {r['kind']} {r['status']}{where} ({r['reason']})"
              + (f" labels: {counts}" if counts else "")
              + (f"; error: {r['error'].splitlines()[0]}" if r["error"] else ""))
    for w in info["workers"]:
        said = "" if w["reported"] == w["status"] else f" (its row says {w['reported']})"
        print(f"worker {w['id']}: {w['status']}{said}, last seen {w['last_seen']}")
    return 0


def run_next(args) -> int:
    from concner.active.ask_order import next_to_ask
    from concner.errors import ConcnerError

    config = config_from_args(args)
    n = config.active.batch_size if args.n is None else args.n
    if n < 1:
        raise ConcnerError("--n must be >= 1")
    rows = next_to_ask(open_store(config), args.name, args.side, n, args.lang)
    for k, r in enumerate(rows, 1):
        if args.json:
            print(json.dumps({"rank": k, "id": r.sentence.id, "lang": r.sentence.lang,
                              "text": r.sentence.text, "ask_order": r.al_rank,
                              "strategy": r.al_strategy,
                              "score": r.al_score, "uncertainty": r.uncertainty,
                              "spans": [{"start": sp.start, "end": sp.end, "label": sp.label,
                                         "score": sp.score} for sp in r.spans]},
                             ensure_ascii=False))
        else:
            score = "" if r.al_score is None else f" {r.al_strategy} {r.al_score:.3f}"
            print(f"{k:>4}  {r.sentence.id}  {r.sentence.lang}{score}  {r.sentence.text}")
    if not rows:
        print(f"nothing left to ask on the {args.side} side"
              + (f" in {args.lang}" if args.lang else ""), file=sys.stderr)
    return 0


def print_readiness(readiness, auto_on: bool, file=None) -> None:
    """The readiness checklist (``concner project status`` and ``auto-retrain``)."""
    state = "on" if auto_on else "off"
    when = ("the worker retrains when new labels arrive" if readiness.ready
            else "waiting until the project is ready") if auto_on else "retrain on demand only"
    print(f"automatic retraining: {state} ({when})", file=file)
    for req in readiness.requirements:
        print(f"  [{'x' if req.met else ' '}] {req.title}: {req.have}", file=file)
        if not req.met:
            print(f"      next: {req.cli}", file=file)


def run_auto_retrain(args) -> int:
    from concner.jobs.readiness import project_readiness

    config = config_from_args(args)
    store = open_store(config)
    if args.state is not None:
        store.set_auto_retrain(args.name, args.state == "on")
    print_readiness(project_readiness(store, args.name, config),
                    store.get_project(args.name).auto_retrain)
    return 0


def warn_not_ready(store, name: str, config) -> None:
    """On stderr: what is missing when an on-demand retrain is asked of a project that is
    not ready (it runs anyway)."""
    from concner.jobs.readiness import project_readiness

    warning = project_readiness(store, name, config).on_demand_warning("cli")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
