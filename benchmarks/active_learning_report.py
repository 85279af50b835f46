"""Summaries of the active-learning benchmark rows: curves, areas, label savings, a plot.

Input rows (one per side, strategy, seed and round) carry ``labels`` (labelled sentences
the model was trained on) and ``f1`` (lang -> strict seqeval F1, fraction). For each side
and strategy the curve is the mean over seeds of the mean F1 over target languages, at
each label count. Partial results are summarised as they are (``complete`` says whether
every seed reached the budget).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def curves(rows: list[dict]) -> dict:
    """``{side: {strategy: {"labels": [...], "mean": [...], "std": [...], "n_seeds": [...],
    "per_lang": {lang: [...]}}}}`` from benchmark rows (mean over target languages first,
    then mean and standard deviation over seeds)."""
    grouped: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        grouped[row["side"]][row["strategy"]][row["labels"]].append(row)
    out: dict = {}
    for side, strategies in grouped.items():
        out[side] = {}
        for strategy, by_labels in strategies.items():
            labels = sorted(by_labels)
            langs = sorted({lang for rs in by_labels.values() for r in rs for lang in r["f1"]})
            means, stds, counts = [], [], []
            per_lang: dict = {lang: [] for lang in langs}
            for n in labels:
                seed_means = [float(np.mean(list(r["f1"].values()))) for r in by_labels[n]]
                means.append(float(np.mean(seed_means)))
                stds.append(float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else 0.0)
                counts.append(len(seed_means))
                for lang in langs:
                    per_lang[lang].append(float(np.mean([r["f1"][lang] for r in by_labels[n]
                                                         if lang in r["f1"]])))
            out[side][strategy] = {"labels": labels, "mean": means, "std": stds,
                                   "n_seeds": counts, "per_lang": per_lang}
    return out


def area_under_curve(labels: list[int], values: list[float]) -> float | None:
    """Trapezoid area divided by the label range: the average F1 over the label range."""
    if len(labels) < 2:
        return None
    x, y = np.asarray(labels, dtype=float), np.asarray(values, dtype=float)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / (x[-1] - x[0]))


def labels_to_reach(labels: list[int], values: list[float], target: float) -> float | None:
    """First label count at which the curve reaches ``target`` (linear interpolation
    between measured points), or None when it never does."""
    for i, (n, v) in enumerate(zip(labels, values)):
        if v >= target:
            if i == 0:
                return float(n)
            n0, v0 = labels[i - 1], values[i - 1]
            return float(n0 + (target - v0) / (v - v0) * (n - n0))
    return None


def _final_at(curve: dict | None, budget: int) -> float | None:
    """A curve's mean F1 at ``budget``, or None while it has not got there."""
    if curve and curve["labels"] and curve["labels"][-1] == budget:
        return curve["mean"][-1]
    return None


def summarise(rows: list[dict], budget: int, seeds: list[int]) -> dict:
    """Per side: curves, area under each, and labels needed to reach random's F1 at ``budget``.

    Two readings of "labels to reach random": ``labels_to_reach_random`` compares the curves
    averaged over seeds; ``per_seed`` compares each seed's curve with random's curve of the
    same seed (same initial model and pool), which removes the spread between seeds that
    the averaged reading still carries. ``auc_vs_random``: the area under a seed's curve
    minus the area under random's curve of the same seed, averaged over the seeds where
    both reached the budget (fair when strategies have run different seeds, and steady
    when the curves are flat at the end). ``complete``: every seed in ``seeds`` (the seeds
    every strategy must have) reached the budget; rows of other seeds count as extra.
    """
    seed_curves = {seed: curves([r for r in rows if r["seed"] == seed])
                   for seed in sorted({r["seed"] for r in rows})}
    summary: dict = {}
    for side, strategies in curves(rows).items():
        reference = _final_at(strategies.get("random"), budget)
        side_out: dict = {"random_f1_at_budget": reference, "required_seeds": list(seeds),
                          "strategies": {}}
        for strategy, c in strategies.items():
            needed = None if reference is None else labels_to_reach(c["labels"], c["mean"], reference)
            per_seed = {}
            for seed, by_side in seed_curves.items():
                own = by_side.get(side, {}).get(strategy)
                if own is None:
                    continue
                ref = _final_at(by_side[side].get("random"), budget)
                final = _final_at(own, budget)
                need = None if ref is None else labels_to_reach(own["labels"], own["mean"], ref)
                auc = area_under_curve(own["labels"], own["mean"])
                random_curve = by_side[side].get("random")
                # areas are compared only over the same, whole label range
                paired = (None if final is None or ref is None else
                          auc - area_under_curve(random_curve["labels"], random_curve["mean"]))
                per_seed[seed] = {"final": final, "random_at_budget": ref, "auc": auc,
                                  "auc_vs_random": paired,
                                  # None: not reached (yet, when the curve is unfinished)
                                  "labels_to_reach_random": need, "at_budget": final is not None}
            complete = all(per_seed.get(seed, {}).get("at_budget") for seed in seeds)
            gains = [p["auc_vs_random"] for p in per_seed.values() if p["auc_vs_random"] is not None]
            side_out["strategies"][strategy] = {
                **c,
                "auc": area_under_curve(c["labels"], c["mean"]),
                "auc_vs_random": float(np.mean(gains)) if gains else None,
                "auc_vs_random_seeds": len(gains),
                "labels_to_reach_random": needed,
                "saving": None if needed is None else 1.0 - needed / budget,
                "complete": complete,
                "per_seed": per_seed,
            }
        summary[side] = side_out
    return summary


def _seed_reading(c: dict) -> str:
    """Per seed: labels to reach random's F1 of the same seed, e.g. ``s1 762, s2 running``."""
    parts = []
    for seed, p in sorted(c["per_seed"].items()):
        if p["random_at_budget"] is None:
            parts.append(f"s{seed} n/a")
        elif p["labels_to_reach_random"] is not None:
            parts.append(f"s{seed} {p['labels_to_reach_random']:.0f}")
        else:
            parts.append(f"s{seed} {'not reached' if p['at_budget'] else 'running'}")
    return ", ".join(parts) or "–"


def _signed(x: float) -> str:
    return f"{100 * x:+.1f}"


def _paired_reading(c: dict) -> str:
    """Per seed AUC minus random's of the same seed, e.g. ``s1 +0.2, s2 +2.1``."""
    return ", ".join(f"s{seed} {_signed(p['auc_vs_random'])}"
                     for seed, p in sorted(c["per_seed"].items())
                     if p["auc_vs_random"] is not None)


def markdown(summary: dict, budget: int, header: str = "", target_saving: float = 0.3) -> str:
    """The summary as Markdown: ``header``, then per side a verdict, a table of curve
    statistics and a table of the curves themselves (mean F1 over seeds at each count)."""
    lines = [header] if header else []
    for side, s in summary.items():
        ref = s["random_f1_at_budget"]
        lines.append(f"## {side} side (random at {budget} labels: "
                     f"{'n/a' if ref is None else f'{100 * ref:.1f}'} mean F1)\n")
        reached = {n: c["labels_to_reach_random"] for n, c in s["strategies"].items()
                   if n != "random" and c["labels_to_reach_random"] is not None}
        if ref is not None and reached:
            best = min(reached, key=reached.get)
            limit = (1 - target_saving) * budget
            verdict = "met" if reached[best] <= limit else "not met"
            lines.append(f"Target (a strategy reaches random's {budget}-label F1 with at most "
                         f"{limit:.0f} labels, on the curves averaged over seeds): **{verdict}**; "
                         f"closest: {best} at {reached[best]:.0f} labels.\n")
            own = s["strategies"].get("random", {}).get("labels_to_reach_random")
            if own is not None and own < budget:
                lines.append(f"Caution: random's own curve first reaches that F1 at {own:.0f} "
                             "labels, so the curves are flat at the end and label counts there "
                             "measure noise; the area under the curve (AUC) is the steadier "
                             "comparison.\n")
        gains = {n: c["auc_vs_random"] for n, c in s["strategies"].items()
                 if n != "random" and c["auc_vs_random"] is not None}
        if gains:
            best = max(gains, key=gains.get)
            c = s["strategies"][best]
            lines.append(f"Area under the curve minus random's, seed by seed (the steadier "
                         f"reading): largest for **{best}**, {_signed(gains[best])} F1 averaged "
                         f"over the whole label range ({_paired_reading(c)}).\n")
        required = ", ".join(map(str, s.get("required_seeds", [])))
        lines.append("| strategy | F1 at last point | labels | AUC | AUC - random's, same seeds "
                     "| labels to reach random (mean curve) | saving | per seed, vs random of "
                     f"that seed | seeds at budget | complete (seeds {required}) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for name, c in sorted(s["strategies"].items()):
            last = f"{100 * c['mean'][-1]:.1f} ± {100 * c['std'][-1]:.1f}" if c["mean"] else "–"
            auc = "–" if c["auc"] is None else f"{100 * c['auc']:.1f}"
            if ref is None:
                need = "n/a (random not at the budget yet)"
            elif c["labels_to_reach_random"] is None:
                need = "not reached"
            else:
                need = f"{c['labels_to_reach_random']:.0f}"
            save = "–" if c["saving"] is None else f"{100 * c['saving']:.0f}%"
            at_budget = ", ".join(str(k) for k, p in sorted(c["per_seed"].items())
                                  if p["at_budget"]) or "none"
            paired = ("–" if name == "random" or c["auc_vs_random"] is None else
                      f"{_signed(c['auc_vs_random'])} ({_paired_reading(c)})")
            lines.append(f"| {name} | {last} | {c['labels'][-1] if c['labels'] else '–'} | {auc} "
                         f"| {paired} | {need} | {save} | {_seed_reading(c)} | {at_budget} "
                         f"| {'yes' if c['complete'] else 'no'} |")
        counts = sorted({n for c in s["strategies"].values() for n in c["labels"]})
        lines.append("")
        lines.append("Mean F1 over the target languages at each label count (mean over the "
                     "seeds that got there; `(n=k)` marks a point fewer seeds have reached than "
                     "started):\n")
        lines.append("| strategy | " + " | ".join(str(n) for n in counts) + " |")
        lines.append("|---|" + "---|" * len(counts))
        for name, c in sorted(s["strategies"].items()):
            at = dict(zip(c["labels"], zip(c["mean"], c["n_seeds"])))
            cells = []
            for n in counts:
                if n not in at:
                    cells.append("–")
                else:
                    m, k = at[n]
                    cells.append(f"{100 * m:.1f}" + (f" (n={k})" if k < len(c["per_seed"]) else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict, path: Path, title: str) -> Path:
    """F1-versus-labels curves (mean over target languages; band = ±1 std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = sorted(summary)
    fig, axes = plt.subplots(1, max(1, len(sides)), figsize=(6 * max(1, len(sides)), 4.5),
                             squeeze=False)
    for ax, side in zip(axes[0], sides):
        for name, c in sorted(summary[side]["strategies"].items()):
            x, y, e = np.array(c["labels"]), 100 * np.array(c["mean"]), 100 * np.array(c["std"])
            label = f"{name} ({len(c['per_seed'])} seeds)"
            ax.plot(x, y, marker="o", ms=3, label=label, linestyle="--" if name == "random" else "-")
            ax.fill_between(x, y - e, y + e, alpha=0.15)
        ref = summary[side]["random_f1_at_budget"]
        if ref is not None:
            ax.axhline(100 * ref, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{side} side")
        ax.set_xlabel("labelled sentences")
        ax.set_ylabel("mean dev F1 over target languages")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(rows: list[dict], out_dir: Path, stem: str, budget: int, seeds: list[int],
                  title: str, header: str = "") -> dict:
    """Write ``<stem>.json`` (summary), ``<stem>.md`` (``header`` and tables) and
    ``<stem>.png`` (curves)."""
    summary = summarise(rows, budget, seeds)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"{stem}.md").write_text(markdown(summary, budget, header), encoding="utf-8")
    if summary:
        plot(summary, out_dir / f"{stem}.png", title)
    return summary
