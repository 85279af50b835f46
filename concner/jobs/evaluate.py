"""The ``evaluate`` job: score model versions on the project's current gold dev sentences.

:func:`evaluate_dev` scores one model on every target language's dev sentences (the
retrain uses it too); :func:`execute_evaluate` runs a queued evaluate run, for one version
or for every stored version, and records one metrics row per language and version.
"""

from __future__ import annotations

from concner.errors import ConcnerError
from concner.jobs.context import JobContext, RunProgress, job_outcome
from concner.store.snapshot import Snapshot, take_snapshot


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
    on an older dev set is recognisable and promotion compares like with like."""
    store = ctx.store
    if not store.start_run(run_id, ctx.owner):
        return "skipped"
    progress = RunProgress(ctx, run_id)

    def requeue() -> str:  # the worker stops: a new run evaluates them again
        again, _ = store.request_evaluation(name, model_version_id, reason="shutdown",
                                            config=store.get_run(run_id).config)
        return f"interrupted: the worker shut down; re-queued as run {again}"

    with job_outcome(ctx, run_id, on_shutdown=requeue) as outcome:
        progress.stage("evaluate")
        snap = take_snapshot(store, name)
        if model_version_id is not None:
            outcome.model_version_id = model_version_id
            _evaluate_version(ctx, run_id, store.get_model_version(model_version_id), snap,
                              progress)
        else:
            _evaluate_every_version(ctx, name, run_id, snap, progress)
        outcome.status = "succeeded"
    return outcome.status


def _evaluate_version(ctx: JobContext, run_id: int, mv, snap: Snapshot,
                      progress: RunProgress) -> None:
    """Evaluate ``mv`` on ``snap``'s dev sentences into run ``run_id``'s metrics rows."""
    store = ctx.store
    counts = dict(store.get_run(mv.run_id).label_counts or {}) if mv.run_id is not None else {}
    counts.update({k: snap.label_counts[k] for k in ("dev_by_lang", "dev_fingerprint")})
    store.record_snapshot(run_id, label_counts=counts, config=store.get_run(run_id).config or {},
                          seed=0)
    reports = evaluate_dev(ctx.registry.load(mv), snap,
                           batch_size=ctx.config.training.eval_batch_size,
                           device=ctx.config.training.device)
    store.add_metrics(run_id, "dev", reports, model_version_id=mv.id)
    if reports:
        store.set_model_mean_f1(mv.id, mean_f1(reports))
    progress.log(f"v{mv.version}: mean dev F1 "
                 + (f"{100 * mean_f1(reports):.2f}" if reports else "n/a (no dev sentences)"))


def _evaluate_every_version(ctx: JobContext, name: str, run_id: int, snap: Snapshot,
                            progress: RunProgress) -> None:
    """One evaluate run per stored version (``config.part_of = run_id``); a version that
    cannot be evaluated fails its own run, and this one only when all of them failed."""
    store = ctx.store
    parent = store.get_run(run_id)
    versions = store.model_versions(name)
    progress.log(f"evaluating {len(versions)} model versions on dev set "
                 f"{snap.label_counts['dev_fingerprint']} ({_dev_text(snap)})")
    failed = []
    for mv in versions:
        progress.write(force=True)  # honour a cancel (or shutdown) of this run first
        child, _ = store.request_run(name, kind="evaluate", reason=parent.reason,
                                     model_version_id=mv.id, config={"part_of": run_id})
        store.start_run(child, ctx.owner)
        with job_outcome(ctx, child) as part:
            part.model_version_id = mv.id
            _evaluate_version(ctx, child, mv, snap, progress)
            part.status = "succeeded"
        if part.status != "succeeded":
            failed.append(f"v{mv.version} (run {child}: {(part.error or '').splitlines()[0]})")
    store.record_snapshot(run_id, label_counts={k: snap.label_counts[k] for k in (
        "dev_by_lang", "dev_fingerprint")}, config=parent.config or {}, seed=0)
    if failed:
        progress.log("could not evaluate " + "; ".join(failed))
    if versions and len(failed) == len(versions):
        raise ConcnerError(f"no model version of {name!r} could be evaluated: "
                           + "; ".join(failed))


def _dev_text(snap: Snapshot) -> str:
    counts = snap.label_counts.get("dev_by_lang") or {}
    return ", ".join(f"{n} {lang}" for lang, n in counts.items()) or "no dev sentences"
