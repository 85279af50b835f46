"""The worker's full retrain, timed per variant and seed, each in its own process.

    python -m benchmarks.speed --section retrain --retrain-variants before after --seeds 13 14 15

Each (variant, seed) runs :func:`concner.jobs.retrain.execute_retrain` exactly as the
worker does, on a SQLite store holding the benchmark's data as a project (1,000 English
PAN-X sentences + their Apertium es translations, 2,000 unlabelled es sentences, 1,000 es
dev sentences) with the worker's default configuration; the variant's settings are the
project's own training config, so nothing else differs. Runs are interleaved (seed by seed,
every variant in turn) so a busy machine slows them alike. Per run: the job's seconds, the
training seconds split by stage into data / forward / backward / optimizer / the rest (dev
evaluation after each epoch, best-epoch copies, checkpoints), dev F1, peak RSS of the
process. ``--incremental`` adds, for the first seed, the incremental update after 50 new
labels.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks import bench_data as bd
from benchmarks.common import cpu_seconds, markdown_table, peak_rss_mb

#: project training configs, each pinning the settings issue 20 measured (so a variant
#: means the same whatever the defaults become); "before" is the defaults before issue 20
_OLD = {"embedding_rows": "all", "cpu_bf16": False, "kd_max_sentences": 2000}
VARIANTS: dict[str, dict] = {
    "before": {"training": _OLD},
    "used_rows": {"training": {**_OLD, "embedding_rows": "used"}},
    "used_rows_bf16": {"training": {**_OLD, "embedding_rows": "used", "cpu_bf16": True}},
    "used_rows_bf16_kd1000": {"training": {"embedding_rows": "used", "cpu_bf16": True,
                                           "kd_max_sentences": 1000}},
    "used_rows_early_stop1": {"training": {**_OLD, "embedding_rows": "used",
                                           "early_stop_patience": 1}},
    "trimmed_encoder": {"encoder": "trim", "training": _OLD},
    "defaults": {},
}


def _stage_split(history: list[dict]) -> dict[str, dict]:
    """Per stage: epochs, steps and seconds split into the loop's timers and the rest."""
    out: dict[str, dict] = {}
    for record in history:
        s = out.setdefault(record["stage"], {"epochs": 0, "steps": 0, "seconds": 0.0,
                                             "data": 0.0, "forward": 0.0, "backward": 0.0,
                                             "optimizer": 0.0})
        s["epochs"] += 1
        s["steps"] += record["steps"]
        s["seconds"] += record["seconds"]
        for key, value in record["timing"].items():
            s[key] += value
    for s in out.values():
        s["eval_and_checkpoint"] = s["seconds"] - sum(s[k] for k in ("data", "forward",
                                                                     "backward", "optimizer"))
        for key in list(s):
            if isinstance(s[key], float):
                s[key] = round(s[key], 1)
    return out


def measure(variant: str, seed: int, smoke: bool, incremental: bool, setup) -> dict:
    """One full retrain (and optionally the incremental update after it), in this process."""
    import torch

    import concner.method.training
    from concner.config import load_config
    from concner.jobs.context import JobContext
    from concner.jobs.registry import ModelRegistry
    from concner.jobs.retrain import execute_retrain
    from concner.store import Store

    torch.set_num_threads(1 if smoke else 2)
    spec = VARIANTS[variant]
    n = 40 if smoke else 1000
    source = bd.source_sample(n, pool=400) if smoke else bd.source_sample(1000)
    tr, _ = bd.translations(source, "es", work=setup.work)
    unl = bd.unlabelled("es", 30 if smoke else 2000)
    dev = bd.dev("es", "report", 30 if smoke else 1000)
    extra = bd.source_sample(n + 50, pool=400 if smoke else None)
    old_ids = {s.id for s in source}
    new = [s for s in extra if s.id not in old_ids][:50]

    folder = setup.work / "retrain" / f"{variant}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = load_config(env={  # defaults only: the caller's CONCNER_* variables do not count
        "CONCNER_SERVICES__DATABASE_URL": f"sqlite:///{folder / 'store.db'}",
        "CONCNER_SERVICES__CHECKPOINTS": str(folder / "models")})
    store = Store(config.services.database_url)
    name = "cycle"
    training_config = {k: dict(v) for k, v in spec.items() if k != "encoder"}
    training_config.setdefault("training", {})["seed"] = seed
    store.create_project(name, source_lang="en", target_langs=["es"],
                         entity_types=["PER", "ORG", "LOC"],
                         encoder=str(setup.encoder(spec.get("encoder", "full"))),
                         training_config=training_config)
    store.import_sentences(name, source, role="source", split="train")
    store.import_sentences(name, tr, role="translation", split="train")
    store.import_sentences(name, [s.with_tags(None) for s in new], role="source", split="pool")
    store.import_sentences(name, unl, role="target", split="pool")
    store.import_sentences(name, dev, role="target", split="dev")
    ctx = JobContext(store, ModelRegistry.from_config(store, config), config, "speed-benchmark")
    real_train, trained = concner.method.training.train, []

    def timed_train(cfg, data, **kwargs):  # records the training part, changes nothing
        result = real_train(cfg, data, **kwargs)
        trained.append({"train_seconds": round(result.seconds, 1),
                        "stages": _stage_split(result.history),
                        "sentences": len(data.source),
                        "translations": len(data.translations or []),
                        "unlabelled": len(data.unlabelled_target),
                        "warm_start": kwargs.get("init") is not None})
        return result

    def retrain() -> dict:
        run_id, _ = store.request_run(name)
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        status = execute_retrain(ctx, name, run_id)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        run = store.get_run(run_id)
        if status != "succeeded":
            raise RuntimeError(f"retrain run {run_id} {status}: {run.error}")
        (metric,) = store.metrics(name, run_id=run_id)
        return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                "f1_es": round(metric.f1, 4),
                "kind": run.update_kind, "new_labels": run.n_new_labels, **trained[-1]}

    concner.method.training.train = timed_train
    try:
        out = {"variant": variant, "seed": seed, "full": retrain()}
        out["peak_rss_mb_full"] = round(peak_rss_mb(), 0)
        # the full retrain's settings (the incremental update's differ: incremental_config)
        used = store.get_run(store.runs(name, kind="retrain")[0].id).config
        if incremental:
            for sent in new:  # an annotator labels the 50 pool sentences
                store.add_annotation(name, sent.id, sent.tags, author="annotator")
            out["incremental"] = retrain()
        out["config"] = {k: used[k] for k in ("model", "loss", "training")}
    finally:
        concner.method.training.train = real_train
        store.close()
    out["peak_rss_mb"] = round(peak_rss_mb(), 0)
    shutil.rmtree(folder / "models", ignore_errors=True)  # 0.5 GB per version
    return out


def split_by_machine(saved: dict, machine: str) -> tuple[dict | None, dict]:
    """``(this machine's retrain section or None, every other machine's by name)`` from the
    saved speed.json: runs resume only on the machine that made them (a figure from
    another CPU must not be averaged or paired with this one's), and the other machines'
    sections are kept beside it, not dropped."""
    elsewhere = dict(saved.get("retrain_elsewhere", {}))
    mine = saved.get("retrain")
    if mine is not None and mine.get("provenance", {}).get("machine") != machine:
        elsewhere[mine["provenance"]["machine"]] = mine
        mine = elsewhere.pop(machine, None)
    elif mine is None:
        mine = elsewhere.pop(machine, None)
    return mine, elsewhere


def _child(variant: str, seed: int, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.speed", "--one-retrain", variant, str(seed),
           str(int(args.smoke)), str(int(args.incremental and seed == args.seeds[0]))]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def section_retrain(setup, args, earlier: dict | None = None,
                    save=None) -> dict:
    """Every variant at every seed, interleaved, each in a child process. Resumable: runs
    in ``earlier`` (the last result) for the same sizes are kept and not redone, and
    ``save(result)`` is called after every run."""
    variants = args.retrain_variants or ["before", "defaults"]
    sizes = {"source": 40 if args.smoke else 1000, "unlabelled": 30 if args.smoke else 2000,
             "dev": 30 if args.smoke else 1000}
    runs: list[dict] = []
    if earlier and earlier.get("sizes") == sizes and not args.fresh:
        runs = list(earlier.get("runs", []))
    done = {(r["variant"], r["seed"]) for r in runs}
    result = {}
    for seed in args.seeds:
        for variant in variants:
            if (variant, seed) in done:
                continue
            run = _child(variant, seed, args)
            run["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            run["load_average"] = [round(x, 2) for x in os.getloadavg()]
            print(f"[speed] retrain {variant} seed {seed}: {run['full']['seconds']} s, "
                  f"F1 {run['full']['f1_es']}, peak RSS {run['peak_rss_mb']} MB", flush=True)
            runs.append(run)
            result = summarise(runs, sizes)
            if save is not None:
                save(result)
    return result or summarise(runs, sizes)


def summarise(runs: list[dict], sizes: dict) -> dict:
    """Per variant: mean seconds, mean and sd of dev F1 over its seeds, the ratios to
    ``before`` over the seeds both ran (so a partial sweep compares like with like)."""
    summary = {}
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        secs = [r["full"]["seconds"] for r in mine]
        cpus = [r["full"]["cpu_seconds"] for r in mine if "cpu_seconds" in r["full"]]
        f1s = [r["full"]["f1_es"] for r in mine]
        summary[variant] = {
            "seeds": [r["seed"] for r in mine],
            "seconds_mean": round(statistics.mean(secs), 1),
            "cpu_seconds_mean": round(statistics.mean(cpus), 1) if cpus else None,
            "f1_mean": round(statistics.mean(f1s), 4),
            "f1_sd": round(statistics.stdev(f1s), 4) if len(f1s) > 1 else None,
            "peak_rss_mb_max": max(r["peak_rss_mb_full"] for r in mine),
            "settings": VARIANTS[variant] or "the defaults"}
    by_key = {(r["variant"], r["seed"]): r["full"] for r in runs}
    for variant, s in summary.items():
        paired = [seed for seed in s["seeds"] if ("before", seed) in by_key]
        if not paired:
            continue
        s["seconds_vs_before"] = round(
            sum(by_key[(variant, k)]["seconds"] for k in paired)
            / sum(by_key[("before", k)]["seconds"] for k in paired), 3)
        s["f1_minus_before"] = round(statistics.mean(
            by_key[(variant, k)]["f1_es"] - by_key[("before", k)]["f1_es"] for k in paired), 4)
    return {"seeds": sorted({r["seed"] for r in runs}), "variants": summary, "runs": runs,
            "sizes": sizes}


def retrain_markdown(r: dict, on: str | None = None) -> list[str]:
    """The section's Markdown; ``on`` names the machine of a section kept from another CPU."""
    p = r["provenance"]
    title = "## Full retrain (the worker's job, one process per run)"
    md = [title if on is None else f"### Full retrain measured on another machine: {on}", "",
          (f"`{p['command']}` on {p['machine']}, commit {p['commit']}, {p['date']}; seeds "
           f"{r['seeds']}, interleaved within each invocation (the table below gives each "
           "run's date and the machine's load: 2 cores shared with other work)."), ""]
    rows = [[v, s["seeds"], s["seconds_mean"], s.get("cpu_seconds_mean") or "–",
             s.get("seconds_vs_before", "–"), s["f1_mean"],
             s["f1_sd"] if s["f1_sd"] is not None else "–", s.get("f1_minus_before", "–"),
             s["peak_rss_mb_max"], json.dumps(s["settings"])]
            for v, s in r["variants"].items()]
    md += [markdown_table(["variant", "seeds", "seconds (mean)", "CPU seconds (mean)",
                           "vs before (same seeds)", "es dev F1 (mean)",
                           "F1 sd", "F1 - before (same seeds)", "peak RSS MB", "settings"],
                          rows), ""]
    split_rows = []
    for run in r["runs"]:
        for stage, s in run["full"]["stages"].items():
            split_rows.append([run["variant"], run["seed"], run.get("date", "–"),
                               run.get("load_average", ["–"])[0], stage, s["epochs"], s["steps"],
                               s["seconds"], s["data"], s["forward"], s["backward"],
                               s["optimizer"], s["eval_and_checkpoint"]])
    md += ["Where the training time goes (seconds per stage):", "",
           markdown_table(["variant", "seed", "date", "load (1 min)", "stage", "epochs", "steps", "total", "data",
                           "forward", "backward", "optimizer",
                           "dev eval + best copy + checkpoint"], split_rows), ""]
    inc = [[run["variant"], run["incremental"]["seconds"], run["incremental"]["f1_es"]]
           for run in r["runs"] if "incremental" in run]
    if inc:
        md += [markdown_table(["variant", "incremental update seconds", "es dev F1"], inc), ""]
    return md


def run_one(argv: list[str], setup_factory) -> dict:
    """``--one-retrain VARIANT SEED SMOKE INCREMENTAL`` (the child's side)."""
    variant, seed, smoke, incremental = argv
    setup = setup_factory(bool(int(smoke)))
    return measure(variant, int(seed), bool(int(smoke)), bool(int(incremental)), setup)


__all__ = ["VARIANTS", "retrain_markdown", "run_one", "section_retrain", "split_by_machine",
           "summarise"]
