"""Translation + projection benchmark on the first N English PAN-X train sentences.

    python benchmarks/translation.py [--panx ../shared/data/panx] [--n 1000]

Runs ``apertium eng-spa`` (default settings: person names protected; and, for comparison,
nothing protected) and the ``dictionary`` backend into de, nl, ru and pl. Writes
``benchmarks/results/translation.json`` and ``translation.md`` with, per run: projection
ok / repaired / failed rates, the share of non-entity words translated, sentences per
second, and the most common repair/failure reasons; plus command, machine, commit, date.

"Share of non-entity words translated": over usable pairs, the source's non-entity tokens
that contain a letter, and the share of them whose form (case-folded) does not reappear
among the translation's non-entity tokens. Words spelled alike in both languages count as
untranslated, so this is a lower bound. For the dictionary backend the exact share of
words replaced by a dictionary sense is reported too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from concner.config import TranslationConfig
from concner.corpus import read_conll
from concner.labels import OUTSIDE
from concner.translation.base import ProjectedPair, status_counts

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
            "platform": platform.platform()}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def nonentity_share(pairs: list[ProjectedPair]) -> float:
    """Share of source non-entity words whose form does not reappear in the translation."""
    total = changed = 0
    for pair in pairs:
        if not pair.usable or pair.source.tags is None:
            continue
        t = pair.translated
        target_words = Counter(tok.casefold() for tok, tag in zip(t.tokens, t.tags or
                                                                  [OUTSIDE] * len(t.tokens))
                               if tag == OUTSIDE)
        for tok, tag in zip(pair.source.tokens, pair.source.tags):
            if tag != OUTSIDE or not any(c.isalpha() for c in tok):
                continue
            total += 1
            if target_words[tok.casefold()] > 0:
                target_words[tok.casefold()] -= 1
            else:
                changed += 1
    return changed / total if total else 0.0


def summarise(name: str, backend: str, target: str, pairs: list[ProjectedPair],
              seconds: float, load_seconds: float, settings: dict) -> dict:
    counts = status_counts(pairs)
    n = len(pairs)
    reasons = Counter()
    for pair in pairs:
        for part in pair.reason.split("; ") if pair.reason else []:
            generic = re.sub(r"\d+", "N", part.split(" (")[0])
            reasons[f"{pair.status.value}: {generic}"] += 1
    row = {
        "name": name, "backend": backend, "target": target, "n": n, "settings": settings,
        **{k: v for k, v in counts.items()},
        **{f"{k}_rate": v / n for k, v in counts.items()},
        "usable_rate": (counts["ok"] + counts["repaired"]) / n,
        "nonentity_translated_share": nonentity_share(pairs),
        "seconds": seconds, "load_seconds": load_seconds,
        "sentences_per_second": n / seconds if seconds > 0 else None,
        "top_reasons": reasons.most_common(8),
    }
    if backend == "dictionary":
        replaced = sum(p.translated.meta["translated_words"] for p in pairs if p.usable)
        candidates = sum(p.translated.meta["candidate_words"] for p in pairs if p.usable)
        row["dictionary_replaced_share"] = replaced / candidates if candidates else 0.0
    return row


def run_apertium(sentences, protect: tuple[str, ...], name: str, repeats: int) -> dict:
    from concner.translation.apertium import ApertiumTranslator

    config = TranslationConfig(apertium_protect_types=protect)
    started = time.perf_counter()
    translator = ApertiumTranslator("eng-spa", config=config)  # no cache: real engine time
    load = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        pairs = translator.translate(sentences, "es")
        times.append(time.perf_counter() - started)
    row = summarise(name, "apertium", "es", pairs, min(times), load,
                     {"pair": "eng-spa", "protect": list(protect),
                      "batch_size": config.apertium_batch_size})
    row["seconds_all_runs"] = times
    row["person_names_kept_verbatim"] = names_kept(pairs)
    return row


def names_kept(pairs: list[ProjectedPair]) -> float:
    """Share of source PER entities found with the same text as a PER span of the
    translation (Apertium translates names like "Smith" unless they are protected)."""
    total = kept = 0
    for pair in pairs:
        source = [pair.source.text[sp.start:sp.end].replace(" ", "")
                  for sp in pair.source.spans if sp.label == "PER"]
        total += len(source)
        if pair.usable:
            t = pair.translated
            found = {t.text[sp.start:sp.end].replace(" ", "") for sp in t.spans
                     if sp.label == "PER"}
            kept += sum(1 for name in source if name in found)
    return kept / total if total else 0.0


def run_dictionary(sentences, target: str, repeats: int) -> dict:
    from concner.translation.dictionary import DictionaryTranslator

    translator = DictionaryTranslator("en")
    started = time.perf_counter()
    translator.dictionary(target)
    load = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        pairs = translator.translate(sentences, target)
        times.append(time.perf_counter() - started)
    return summarise(f"dictionary en-{target}", "dictionary", target, pairs, min(times), load,
                     {"share": translator.share, "seed": translator.seed})


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Translation and label projection",
        "",
        (f"First {result['n_sentences']} English PAN-X train sentences. "
         f"Command: `{result['command']}`. Machine: {m['cpu']}, {m['cores']} cores, "
         f"Python {m['python']}, 1-min load average {m['load_average_1min']:.1f} at the start "
         f"(the cores are shared, so sentences/s varies with it; best of {result['repeats']} "
         f"runs). Commit `{result['git_commit'][:12]}`, {result['date']}."),
        "",
        ("| run | target | ok | repaired | failed | ok + repaired | non-entity words "
         "translated | sentences/s | load s |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        share = f"{r['nonentity_translated_share']:.1%}"
        if "dictionary_replaced_share" in r:
            share += f" (replaced {r['dictionary_replaced_share']:.1%})"
        lines.append(
            f"| {r['name']} | {r['target']} | {r['ok_rate']:.1%} | {r['repaired_rate']:.1%} | "
            f"{r['failed_rate']:.1%} | **{r['usable_rate']:.1%}** | {share} | "
            f"{r['sentences_per_second']:.0f} | {r['load_seconds']:.1f} |")
    for r in result["runs"]:
        if "person_names_kept_verbatim" in r:
            lines.append(f"\n{r['name']}: person names kept verbatim "
                         f"{r['person_names_kept_verbatim']:.1%}.")
    lines += ["", "Target: Apertium ok + repaired >= 95%: "
              + ("**met**" if result["apertium_target_met"] else "**missed**") + ".", "",
              "Most common repair / failure reasons:", ""]
    for r in result["runs"]:
        if r["top_reasons"]:
            lines.append(f"- {r['name']}: " + "; ".join(f"{k} ({v})" for k, v in r["top_reasons"]))
    lines += ["", ("Non-entity words translated: share of the source's non-entity words whose "
                   "form does not reappear in the translation (a lower bound: words spelled "
                   "alike count as untranslated); for the dictionary, in brackets, the exact "
                   "share replaced by a dictionary sense (bounded by the dictionary's "
                   "coverage)."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--panx", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "panx"))
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--targets", default="de,nl,ru,pl")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (best is reported)")
    args = parser.parse_args(argv)
    sentences = read_conll(Path(args.panx) / "train-en.tsv", "en")[:args.n]
    runs = [run_apertium(sentences, ("PER",), "apertium eng-spa (default: PER protected)",
                         args.repeats),
            run_apertium(sentences, (), "apertium eng-spa (nothing protected)", args.repeats)]
    for target in args.targets.split(","):
        runs.append(run_dictionary(sentences, target, args.repeats))
    default = runs[0]
    result = {
        "benchmark": "translation",
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv or sys.argv[1:])),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(),
        "n_sentences": len(sentences),
        "repeats": args.repeats,
        "apertium_target_met": default["usable_rate"] >= 0.95,
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "translation.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    (out / "translation.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
