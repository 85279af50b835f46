"""The ``evaluate`` job: score model versions on the project's current gold dev sentences.

:func:`evaluate_dev` scores one model on every target language's dev sentences (the
retrain uses it too); :func:`execute_evaluate` runs a queued evaluate run, for one version
or for every stored version, and records one metrics row per language and version.
Every stored version is evaluated in shards, one per version (:data:`SHARDED_EVALUATION`,
:mod:`concner.jobs.shards`), which the workers on the queue share.
"""

from __future__ import annotations

import threading

from concner.errors import ConcnerError
from concner.jobs.context import JobContext, RunProgress, bug_report, job_outcome
from concner.jobs.shards import ShardWork, hand_out, register_work, shared_progress
from concner.store.model_versions import Run
from concner.store.snapshot import Snapshot, Watermark, take_snapshot

#: the dev-set counts a version's evaluate run records beside its training counts
DEV_KEYS = ("dev_by_lang", "dev_fingerprint")


def evaluate_dev(bundle, snap: Snapshot, known: dict | None = None,
                 batch_size: int = 64, device: str = "auto") -> dict[str, dict]:
    """``lang -> evaluate() report`` on the gold dev sentences of every target language
    that has some (``known`` reports, e.g. from training, are reused)."""
    from concner.method.evaluation import evaluate
    from concner.method.inference import Predictor

    reports: dict[str, dict] = {}
    predictor = None
    for lang in snap.target_langs:
        gold = snap.dev.get(lang)
        if not gold:
            continue
        if known and lang in known:
            reports[lang] = known[lang]
            continue
        predictor = predictor or Predictor(bundle, batch_size=batch_size, device=device)
        reports[lang] = evaluate(gold, [p.tags for p in predictor.predict(gold)])
    return reports


def mean_f1(reports: dict[str, dict]) -> float | None:
    """The mean F1 over the languages of :func:`evaluate_dev` reports (None: no reports)."""
    return sum(r["f1"] for r in reports.values()) / len(reports) if reports else None


def execute_evaluate(ctx: JobContext, name: str, run_id: int,
                     model_version_id: int | None) -> str:
    """Evaluate one model version, or with ``model_version_id=None`` every stored
    (non-deleted) version, on the project's current gold dev sentences (one snapshot).

    Each version's metrics rows belong to one evaluate run: the run itself for one version;
    for every version, one run per version (``config.part_of`` names this run), since a
    run holds one row per language. A run's ``label_counts`` are the counts the version
    was trained on, with the dev set it was evaluated on (``dev_by_lang``,
    ``dev_fingerprint``), and the version's ``mean_f1`` becomes the new mean, so a score
    on an older dev set is recognisable and promotion compares like with like.

    Every version: the run is handed to shards (one per version) that every worker on
    the queue takes from; the returned status is ``running`` until the last one is done
    (at once ``succeeded`` or ``failed`` with a context that has no queue)."""
    store = ctx.store
    if not store.start_run(run_id, ctx.owner):
        return "skipped"
    if model_version_id is None:
        return hand_out(ctx, run_id, "evaluate")
    progress = RunProgress(ctx, run_id)

    def requeue() -> str:  # the worker stops: a new run evaluates them again
        again, _ = store.request_evaluation(name, model_version_id, reason="shutdown",
                                            config=store.get_run(run_id).config)
        return f"interrupted: the worker shut down; re-queued as run {again}"

    with job_outcome(ctx, run_id, on_shutdown=requeue) as outcome:
        progress.stage("evaluate")
        snap = take_snapshot(store, name)
        outcome.model_version_id = model_version_id
        mv = store.get_model_version(model_version_id)
        _record_version(ctx, run_id, mv, _score_version(ctx, mv, snap),
                        {k: snap.label_counts[k] for k in DEV_KEYS}, progress)
        outcome.status = "succeeded"
    return outcome.status


def _score_version(ctx: JobContext, mv, snap: Snapshot) -> dict[str, dict]:
    """``lang -> evaluate() report`` of version ``mv`` on ``snap``'s dev sentences."""
    return evaluate_dev(ctx.registry.load(mv), snap,
                        batch_size=ctx.config.training.eval_batch_size,
                        device=ctx.config.training.device)


def _record_version(ctx: JobContext, run_id: int, mv, reports: dict[str, dict], dev: dict,
                    progress: RunProgress) -> None:
    """Record ``mv``'s ``reports`` (on the dev set described by ``dev``: ``dev_by_lang``,
    ``dev_fingerprint``) as run ``run_id``'s metrics rows and the version's mean F1."""
    store = ctx.store
    counts = dict(store.get_run(mv.run_id).label_counts or {}) if mv.run_id is not None else {}
    counts.update(dev)
    store.record_snapshot(run_id, label_counts=counts, config=store.get_run(run_id).config or {},
                          seed=0)
    store.add_metrics(run_id, "dev", reports, model_version_id=mv.id)
    if reports:
        store.set_model_mean_f1(mv.id, mean_f1(reports))
    progress.log(f"v{mv.version}: mean dev F1 "
                 + (f"{100 * mean_f1(reports):.2f}" if reports else "n/a (no dev sentences)"))


# -- every version, in shards (concner/jobs/shards.py) ---------------------------------
def _prepare_every_version(ctx: JobContext, run: Run) -> list[dict]:
    """One shard per stored version, all on one snapshot of the dev sets (its watermark
    travels in the payload, so every worker reads the same dev sentences)."""
    store = ctx.store
    name = store.project_name(run.project_id)
    progress = shared_progress(ctx, run)
    progress.stage("evaluate")
    snap = take_snapshot(store, name)
    versions = store.model_versions(name)
    dev = {k: snap.label_counts[k] for k in DEV_KEYS}
    store.record_snapshot(run.id, label_counts=dev, config=run.config or {}, seed=0)
    progress.log(f"evaluating {len(versions)} model versions on dev set "
                 f"{snap.label_counts['dev_fingerprint']} ({_dev_text(snap)}), one shard each")
    return [{"project": name, "model_version_id": mv.id, "version": mv.version, "dev": dev,
             "watermark": snap.watermark.to_dict()} for mv in versions]


_snapshots: dict[tuple, Snapshot] = {}
_snapshots_lock = threading.Lock()


def _dev_snapshot(ctx: JobContext, project: str, watermark: dict) -> Snapshot:
    """The snapshot of ``project`` as of ``watermark``, read once per process (the last
    one is kept: a worker usually runs several shards of one run in a row)."""
    key = (ctx.store.url, project, tuple(sorted(watermark.items())))
    with _snapshots_lock:
        if key not in _snapshots:
            _snapshots.clear()
            _snapshots[key] = take_snapshot(ctx.store, project,
                                            as_of=Watermark.from_dict(watermark))
        return _snapshots[key]


def _score_shard(ctx: JobContext, run: Run, payload: dict) -> dict:
    """Score one version (a shard): ``{"model_version_id", "reports"}``, or ``"error"``
    for a version that cannot be evaluated (its own run fails, the others go on; retrying
    an unreadable checkpoint would not help, so an error here is not a failed attempt)."""
    snap = _dev_snapshot(ctx, payload["project"], payload["watermark"])
    out = {"model_version_id": payload["model_version_id"], "project": payload["project"],
           "dev": payload["dev"]}
    try:
        return {**out, "reports": _score_version(
            ctx, ctx.store.get_model_version(payload["model_version_id"]), snap)}
    except ConcnerError as exc:
        return {**out, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - as unsharded: the version's own run fails
        return {**out, "error": bug_report(run.id, exc)}


def _record_every_version(ctx: JobContext, run: Run, results: list[dict]) -> None:
    """One evaluate run per version (``config.part_of = run.id``) with its metrics rows; a
    version that could not be evaluated fails its own run, and this one only when all of
    them failed. A version whose run already succeeded (a completion that was cut short
    and taken again) is not recorded twice."""
    store = ctx.store
    progress = shared_progress(ctx, run)
    name = results[0]["project"] if results else store.project_name(run.project_id)
    recorded = {r.model_version_id for r in store.runs(name, kind="evaluate", limit=100_000)
                if (r.config or {}).get("part_of") == run.id and r.status == "succeeded"}
    failed = []
    for res in results:
        if res["model_version_id"] in recorded:
            continue
        mv = store.get_model_version(res["model_version_id"])
        child, _ = store.request_run(name, kind="evaluate", reason=run.reason,
                                     model_version_id=mv.id, config={"part_of": run.id})
        store.start_run(child, ctx.owner)
        with job_outcome(ctx, child) as part:
            part.model_version_id = mv.id
            if "error" in res:
                raise ConcnerError(res["error"])
            _record_version(ctx, child, mv, res["reports"], res["dev"], progress)
            part.status = "succeeded"
        if part.status != "succeeded":
            failed.append(f"v{mv.version} (run {child}: {(part.error or '').splitlines()[0]})")
    if failed:
        progress.log("could not evaluate " + "; ".join(failed))
    if results and len(failed) == len(results):
        raise ConcnerError(f"no model version of {name!r} could be evaluated: "
                           + "; ".join(failed))


#: every stored version on the dev sets, one shard per version
SHARDED_EVALUATION = ShardWork(prepare=_prepare_every_version, run_one=_score_shard,
                               complete=_record_every_version)
register_work("evaluate", SHARDED_EVALUATION)


def _dev_text(snap: Snapshot) -> str:
    counts = snap.label_counts.get("dev_by_lang") or {}
    return ", ".join(f"{n} {lang}" for lang, n in counts.items()) or "no dev sentences"
