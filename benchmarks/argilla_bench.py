"""How long the Argilla sync takes on the local stack: push 1,000 records with suggestions,
pull 1,000 submitted answers.

    python benchmarks/argilla_bench.py [--n 1000] [--repeats 3] [--url URL --api-key KEY]

Without ``--url`` a fresh local stack (``LocalArgilla``) is started in a temporary folder
and stopped at the end. Sentences are PAN-X Spanish dev sentences when ``../shared`` is
there (else synthetic ones); suggestions are the gold spans with scores. Each repeat uses
a new dataset. Also timed, for context: a re-push of the same records (nothing changes,
so nothing is sent), submitting the 1,000 answers as an annotator (the server's own cost,
what annotators pay one answer at a time) and an incremental pull with nothing new.
Writes ``benchmarks/results/argilla.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import PANX, RESULTS, markdown_table, provenance
from concner.argilla.client import ArgillaIO, SpanSuggestion
from concner.argilla.launcher import LocalArgilla
from concner.labels import Span
from concner.sentence import Sentence


def sentences(n: int) -> tuple[list[Sentence], str]:
    path = PANX / "dev-es.tsv"
    if path.exists():
        from concner.corpus import read_conll

        sents = [s for s in read_conll(path, "es") if any(t != "O" for t in s.tags)][:n]
        if len(sents) == n:
            return [Sentence.from_tokens(f"es{i:05d}", "es", s.tokens, s.tags)
                    for i, s in enumerate(sents)], str(path.name)
    base = (["Ana", "Pérez", "trabaja", "en", "Acme", "en", "Lima", "."],
            ["B-PER", "I-PER", "O", "O", "B-ORG", "O", "B-LOC", "O"])
    return [Sentence.from_tokens(f"es{i:05d}", "es", base[0], base[1]) for i in range(n)], "synthetic"


def stack_cpu_s(stack: LocalArgilla | None) -> float:
    """CPU seconds used so far by the stack's processes (and their finished children): the
    server's own cost, which wall time on a shared, loaded machine hides."""
    if stack is None:
        return float("nan")
    total = 0.0
    for part in stack.status().parts:
        if part.pid:
            fields = Path(f"/proc/{part.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def timed(stack, fn):
    cpu, t = stack_cpu_s(stack), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, stack_cpu_s(stack) - cpu


def run_once(io: ArgillaIO, annotator: ArgillaIO, sents: list[Sentence], tag: str,
             stack: LocalArgilla | None) -> dict:
    name = io.ensure_dataset(f"bench-{tag}", "target", "es", ["PER", "ORG", "LOC"])
    preds = {s.id: SpanSuggestion([Span(sp.start, sp.end, sp.label, 0.9) for sp in s.spans], 0.5)
             for s in sents}
    report, push_s, push_cpu = timed(stack, lambda: io.push(name, sents, preds, model_version="v1"))
    assert report.created == len(sents), report
    again, repush_s, _ = timed(stack, lambda: io.push(name, sents, preds, model_version="v1"))
    assert again.unchanged == len(sents), again
    ids = io.record_ids(name)
    _, submit_s, _ = timed(stack, lambda: annotator.submit({ids[s.id]: s.spans for s in sents}))
    by_id = {s.id: s for s in sents}
    pulled, pull_s, pull_cpu = timed(stack, lambda: io.pull(name, by_id))
    assert len(pulled.annotations) == len(sents) and not pulled.problems
    assert all(a.tags == by_id[a.sentence_id].tags for a in pulled.annotations)
    none, incremental_s, _ = timed(stack, lambda: io.pull(name, by_id, since=pulled.cursor))
    assert none.annotations == []
    return {"push_s": push_s, "push_server_cpu_s": push_cpu, "repush_unchanged_s": repush_s,
            "submit_answers_s": submit_s, "pull_s": pull_s, "pull_server_cpu_s": pull_cpu,
            "pull_nothing_new_s": incremental_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--url")
    ap.add_argument("--api-key", default=os.environ.get("ARGILLA_API_KEY"),
                    help="default: $ARGILLA_API_KEY (prefer it: a key in argv is visible in ps)")
    args = ap.parse_args(argv)
    sents, source = sentences(args.n)
    stack = None
    if args.url:
        url, key = args.url, args.api_key
    else:
        stack = LocalArgilla(tempfile.mkdtemp(prefix="argilla-bench-"), port=0, redis_port=0,
                             search_port=0)
        status = stack.up()
        url, key = status.url, status.api_key
    try:
        io = ArgillaIO(url, key, batch_size=args.batch_size)
        annotator = io.add_annotator("bench-annotator", "bench-password-1")
        tag = str(int(time.time()))
        runs = [run_once(io, annotator, sents, f"{tag}-{r}", stack) for r in range(args.repeats)]
    finally:
        if stack is not None:
            stack.down()
    keys = list(runs[0])
    summary = {k: {"median_s": round(statistics.median(r[k] for r in runs), 3),
                   "runs_s": [round(r[k], 3) for r in runs]} for k in keys}
    prov = provenance()
    if args.api_key:  # never write the key into the results
        prov["command"] = prov["command"].replace(args.api_key, "***")
    result = {
        "benchmark": "argilla_sync",
        **prov,
        "load_average_1min": os.getloadavg()[0],
        "stack": "argilla-server 2.8.0 + noida-db 0.2.3 (Elasticsearch emulator) + Redis + SQLite, "
                 "started by concner.argilla.launcher" if stack else f"external server {url}",
        "records": args.n, "sentences": source, "push_batch_size": args.batch_size,
        "repeats": args.repeats, "results": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "argilla.json").write_text(json.dumps(result, indent=2) + "\n")
    labels = {"push_s": f"push {args.n} records with suggestions",
              "push_server_cpu_s": "  of which CPU seconds in the Argilla stack",
              "pull_server_cpu_s": "  of which CPU seconds in the Argilla stack",
              "repush_unchanged_s": f"push the same {args.n} again (no change, nothing sent)",
              "submit_answers_s": f"submit {args.n} answers as an annotator (server cost)",
              "pull_s": f"pull {args.n} answers -> IOB2",
              "pull_nothing_new_s": "incremental pull, nothing new"}
    rows = [[labels[k], f"{summary[k]['median_s']:.2f}",
             ", ".join(f"{x:.2f}" for x in summary[k]["runs_s"])] for k in keys
            if summary[k]["median_s"] == summary[k]["median_s"]]  # not NaN (external server)
    md = (f"# Argilla sync on the local stack\n\n`{result['command']}` - {result['date']} - "
          f"{result['machine']} (load average {result['load_average_1min']:.1f} while it ran; "
          f"the machine is shared) - commit {result['commit'][:10]}\n\n{result['stack']}; "
          f"{args.n} sentences ({source}), batches of {args.batch_size}.\n\n"
          + markdown_table(["step", "median seconds", "runs"], rows))
    (RESULTS / "argilla.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
