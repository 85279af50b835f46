"""Chaos soak (issue 16): does the stack lose or duplicate annotators' answers, and do
retrains finish, while its parts are SIGKILLed at random?

``python -m benchmarks.chaos --duration 900 --kills 25`` (the benchmark form; writes
``benchmarks/results/chaos.{json,md}``); ``tests/integration/test_chaos.py`` runs a short form and
asserts the same properties. Loopback only; the kills are paced over ``--duration``
seconds and it stops after ``--kills`` kills, or at ``KILL_LOOP_CAP`` × ``--duration`` when
kills that wait for a training epoch run late on a busy machine (a control run with
``--kills 0`` annotates for ``--duration`` seconds).

What it does, in a throwaway folder:

1. a SQLite store, a config TOML (tiny fast training, free loopback ports for the app,
   Argilla, its Redis and its search emulator) and ``python -m concner.cli up`` as a
   subprocess (in a session of its own, tagged, so cleanup finds every descendant);
2. ``concner project create/import`` (English source, a Spanish pool and dev set), so the
   worker trains, predicts the pool and its sync pushes records to Argilla;
3. two annotators (``ArgillaIO.add_annotator``) that keep submitting and CHANGING answers
   on the pushed records: version ``v`` of an answer is one span on token ``v // 3`` with
   label ``LABELS[v % 3]``, so every version is distinguishable; per (record, annotator)
   the harness keeps each version and whether the SDK call returned (a failed call is
   retried for a while, then recorded as not acknowledged); and ``concner retrain`` now
   and then (run ids kept);
4. meanwhile SIGKILLs (seeded) the queue worker, the app, Redis, the search emulator,
   argilla-server and its rq worker, every part at least once, and measures each part's
   recovery (kill -> answering again);
5. then stops killing, waits for the stack, triggers a final sync through the queue and
   checks: every acknowledged answer's last version is the store's latest Argilla-origin
   version for (sentence, annotator) (else: lost), no version is stored twice (else:
   duplicated), every requested retrain (or its recovery follow-up) succeeded and which
   resumed from a checkpoint, the stack is up, and ``concner argilla status`` /
   ``concner project status`` exit without a traceback.

Every wait is bounded and names what it waited for; a ``finally`` SIGTERMs ``concner up``
and SIGKILLs whatever of its process tree is left.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tiny.py (the tiny encoder), prockit.py, storekit.py
from prockit import alive

from concner.argilla.processes import free_port, http_ok, redis_ok

PROJECT = "chaos"
LABELS = ("PER", "ORG", "LOC")
PARTS = ("worker", "app", "redis", "search", "server", "rq")
#: how long one part may take to answer again after a kill before it counts as not recovered
RECOVERY_BOUND_S = 150.0
#: the kill loop's hard end, in units of --duration (the CI run of the short form on a
#: loaded 2-core machine needed about 1.3 x 180 s for its 6 kills)
KILL_LOOP_CAP = 3.0


def _alive(pid: int | None) -> bool:
    return bool(pid) and alive(pid)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """``predicate()``'s first truthy value within ``timeout`` s, else TimeoutError naming
    ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- data and config ----------------------------------------------------------------------
def _conll_blocks(path: Path, n: int) -> list[str]:
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    return blocks[:n]


def write_data(folder: Path, form: str) -> dict:
    """Source (CoNLL, en), pool (text, es) and dev (CoNLL, es) files, and the encoder."""
    from storekit import make_sentences, tiny_encoder

    from concner import corpus

    files = {"encoder": tiny_encoder(folder)}
    src, pool, dev = folder / "source-en.tsv", folder / "pool-es.txt", folder / "dev-es.tsv"
    if form == "bench":
        from benchmarks.common import PANX

        src.write_text("\n\n".join(_conll_blocks(PANX / "train-en.tsv", 60)) + "\n", "utf-8")
        pool_blocks = _conll_blocks(PANX / "train-es.tsv", 40)
        pool.write_text("\n".join(" ".join(line.split("\t")[0] for line in b.splitlines())
                                  for b in pool_blocks) + "\n", "utf-8")
        dev.write_text("\n\n".join(_conll_blocks(PANX / "dev-es.tsv", 30)) + "\n", "utf-8")
    else:
        corpus.write_conll(make_sentences("src", 30, "en", seed=1), src)
        pool.write_text("\n".join(s.text for s in make_sentences("pool", 16, "es", seed=20,
                                                                  labelled=False)) + "\n", "utf-8")
        corpus.write_conll(make_sentences("dev", 10, "es", seed=10), dev)
    files.update(source=str(src), pool=str(pool), dev=str(dev))
    return files


def write_config(folder: Path, ports: dict) -> Path:
    from concner.config import ServicesConfig

    known = {f.name for f in dataclasses.fields(ServicesConfig)}
    services = {
        "database_url": f"sqlite:///{folder / 'store.db'}",
        "queue_path": str(folder / "queue.db"),
        "checkpoints": str(folder / "models"),
        "argilla_url": f"http://127.0.0.1:{ports['server']}",
        "argilla_data_dir": str(folder / "argilla"),
        "argilla_redis_port": ports["redis"],
        "argilla_search_port": ports["search"],
        "argilla_retries": 2,
        "argilla_backoff_s": 0.5,
        "sync_modules": ["concner.argilla.sync"],
        "sync_every_minutes": 1,
        "retrain_min_new_labels": 10,
        # ready for automatic retraining with its 30 source labels (concner/jobs/readiness.py)
        "auto_retrain_min_source_labels": 10,
        "heartbeat_seconds": 1.0,
        "lock_stale_seconds": 6.0,
        "worker_threads": 2,
        "run_dir": str(folder / "run"),
    }
    lines = ["[services]"]
    for key, value in services.items():
        if key in known:  # run_dir etc. only once the supervisor's settings exist
            lines.append(f"{key} = {json.dumps(value)}")
    path = folder / "concner.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


TRAINING_TOML = """[training]
epochs = 4
kd_epochs = 0
batch_size = 8
learning_rate = 0.003
head_learning_rate = 0.01
num_threads = 1
device = "cpu"
warmup_ratio = 0.0

[loss]
kd = false
use_translation = false

[model]
max_length = 32
window_stride = 4
projection_dim = 16
"""


# -- the stack --------------------------------------------------------------------------
class Stack:
    """``concner up`` and how to find, kill and probe each of its parts."""

    def __init__(self, folder: Path, config: Path, ports: dict, scope, log):
        self.folder, self.config, self.ports, self.scope, self.log = folder, config, ports, scope, log
        self.home = folder / "argilla"
        self.env = dict(os.environ, CONCNER_CONFIG=str(config), PYTHONUNBUFFERED="1",
                        HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
                        PYTHONPATH=str(ROOT))
        for key in [k for k in self.env if k.startswith("CONCNER_SERVICES__")]:
            self.env.pop(key)
        self.proc: subprocess.Popen | None = None
        self.up_log = folder / "up.log"
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from concner.store import Store

            self._store = Store(f"sqlite:///{self.folder / 'store.db'}", migrate=False)
        return self._store

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "concner.cli", *args], cwd=self.folder,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def start(self) -> None:
        with open(self.up_log, "ab") as out:
            self.proc = self.scope.popen(
                [sys.executable, "-m", "concner.cli", "up", "--config", str(self.config),
                 "--port", str(self.ports["app"]), "--argilla-home", str(self.home)],
                cwd=self.folder, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def up_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def up_tail(self, n: int = 1500) -> str:
        try:
            return self.up_log.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    # pids ---------------------------------------------------------------------------
    def _descendants(self) -> list[int]:
        if not self.up_alive():
            return []
        kids: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int(Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [self.proc.pid]
        while todo:
            for child in kids.get(todo.pop(), []):
                out.append(child)
                todo.append(child)
        return out

    def _state_pid(self, part: str) -> int | None:
        state_file = self.folder / "run" / "supervisor.json"
        try:
            parts = json.loads(state_file.read_text()).get("parts") or {}
        except (OSError, ValueError):
            return None
        names = {"rq": ("argilla-worker", "rq", "argilla_worker"), "server": ("server", "argilla-server"),
                 "worker": ("worker",), "app": ("app",), "redis": ("redis",), "search": ("search",)}
        for name in names[part]:
            pid = (parts.get(name) or {}).get("pid")
            if pid and _alive(pid):
                return int(pid)
        return None

    def pid(self, part: str) -> int | None:
        """The live pid of ``part``: Argilla's pid files, else ``concner up``'s descendants
        (worker: ``workers.retrain``, app: ``streamlit``)."""
        pidfile = {"redis": "redis", "search": "search", "server": "server", "rq": "worker"}.get(part)
        if pidfile:
            try:
                pid = int((self.home / "run" / f"{pidfile}.pid").read_text().strip())
            except (OSError, ValueError):
                pid = None
            if pid and _alive(pid):
                return pid
            return None
        mark = {"worker": "workers.retrain", "app": "streamlit"}[part]
        found = [p for p in self._descendants() if mark in _cmdline(p) and _alive(p)]
        return min(found) if found else self._state_pid(part)

    # probes -------------------------------------------------------------------------
    def answering(self, part: str, old_pid: int | None = None) -> bool:
        if part == "app":
            return http_ok(f"http://127.0.0.1:{self.ports['app']}/_stcore/health")
        if part == "server":
            return http_ok(f"http://127.0.0.1:{self.ports['server']}/api/v1/version")
        if part == "redis":
            return redis_ok(self.ports["redis"])
        if part == "search":
            return http_ok(f"http://127.0.0.1:{self.ports['search']}/")
        if part == "rq":
            pid = self.pid("rq")
            return pid is not None and pid != old_pid
        # the queue worker: a new pid whose heartbeat is fresh in the store
        from datetime import UTC, datetime

        try:
            rows = self.store.workers()
        except Exception:  # noqa: BLE001 (a locked SQLite file: not yet)
            return False
        now = datetime.now(UTC)
        for w in rows:
            seen = w.last_seen if w.last_seen.tzinfo else w.last_seen.replace(tzinfo=UTC)
            if w.status == "running" and w.pid != old_pid and _alive(w.pid) \
                    and (now - seen).total_seconds() < 5:
                return True
        return False

    def all_answering(self) -> dict[str, bool]:
        return {p: self.answering(p) if p not in ("rq", "worker") else
                (self.pid("rq") is not None if p == "rq" else self._worker_fresh())
                for p in PARTS}

    def _worker_fresh(self) -> bool:
        return self.answering("worker", old_pid=-1)


# -- annotators -----------------------------------------------------------------------
class Annotators:
    """Two annotators submitting and changing answers until ``stop`` is set."""

    def __init__(self, stack: Stack, rng: random.Random, log, pace_s: float):
        self.stack, self.rng, self.log, self.pace_s = stack, rng, log, pace_s
        self.stop = threading.Event()
        #: (sentence id, username) -> [{"v", "tags", "acked", "t"}]
        self.versions: dict[tuple[str, str], list[dict]] = {}
        self.calls = {"ok": 0, "failed_then_ok": 0, "gave_up": 0}
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="annotators", daemon=True)

    def connect(self) -> None:
        from concner.argilla.client import ArgillaIO, dataset_name

        creds = json.loads((self.stack.home / "credentials.json").read_text())
        self.owner = ArgillaIO(f"http://127.0.0.1:{self.stack.ports['server']}", creds["api_key"],
                               retries=1, backoff_s=0.5, timeout_s=15)
        self.users = {name: self.owner.add_annotator(name, f"{name}-password-1")
                      for name in ("chaos1", "chaos2")}
        self.dataset = dataset_name(PROJECT, "target", "es")
        self.sentences = {s.id: s for s in self.stack.store.sentences(PROJECT, role="target",
                                                                      lang="es", split="pool")}
        self.record_ids = self._record_ids()

    def _record_ids(self) -> dict[str, str]:
        # the dataset is created by the first sync that has records for it, which may come
        # after the first model: until then there is nothing to annotate
        if not self.owner.dataset_exists(self.dataset):
            return {}
        return {sid: rid for sid, rid in self.owner.record_ids(self.dataset).items()
                if sid in self.sentences}

    @staticmethod
    def version_spans(sent, v: int):
        from concner.labels import Span

        i, label = v // 3, LABELS[v % 3]
        start, end = sent.offsets[i]
        tags = ["O"] * len(sent.tokens)
        tags[i] = f"B-{label}"
        return [Span(start, end, label)], tags

    def _submit(self, user: str, sid: str) -> None:
        from concner.errors import ServiceUnavailable

        sent = self.sentences[sid]
        history = self.versions.setdefault((sid, user), [])
        v = len(history)
        if v >= 3 * len(sent.tokens):
            return  # every distinguishable version used
        spans, tags = self.version_spans(sent, v)
        entry = {"v": v, "tags": tags, "acked": False, "t": time.time(), "attempts": 0}
        history.append(entry)
        deadline = time.monotonic() + 60
        while not self.stop.is_set() or entry["attempts"] == 0:
            entry["attempts"] += 1
            try:
                self.users[user].submit({self.record_ids[sid]: spans})
                entry["acked"], entry["t"] = True, time.time()
                self.calls["ok" if entry["attempts"] == 1 else "failed_then_ok"] += 1
                return
            except (ServiceUnavailable, OSError) as exc:
                if time.monotonic() > deadline:
                    self.calls["gave_up"] += 1
                    self.errors.append(f"{user} {sid} v{v}: {str(exc)[:200]}")
                    return
                time.sleep(1.0)
        self.calls["gave_up"] += 1

    def _run(self) -> None:
        last_refresh = time.monotonic()
        while not self.stop.is_set():
            try:
                if time.monotonic() - last_refresh > 20:
                    self.record_ids.update(self._record_ids())
                    last_refresh = time.monotonic()
                if self.record_ids:
                    # a small set of records, so each gets many versions
                    # (a record whose distinguishable versions are used up is left)
                    pool = [sid for sid in sorted(self.record_ids) if any(
                        len(self.versions.get((sid, u), ())) < 3 * len(self.sentences[sid].tokens)
                        for u in self.users)][:10]
                    if not pool:
                        self.stop.wait(self.pace_s)
                        continue
                    self._submit(self.rng.choice(sorted(self.users)), self.rng.choice(pool))
            except Exception as exc:  # noqa: BLE001 (reported, never kills the soak)
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                time.sleep(1.0)
            self.stop.wait(self.pace_s)


# -- checks ---------------------------------------------------------------------------
def stored_versions(store) -> dict[tuple[str, str], list[list[str]]]:
    """(sentence id, author) -> the Argilla-origin label versions in the store, in order."""
    import sqlalchemy as sa

    from concner.store.model_versions import Annotation, SentenceRow

    out: dict[tuple[str, str], list[list[str]]] = {}
    with store.read() as s:
        rows = s.execute(sa.select(SentenceRow.external_id, Annotation.author, Annotation.tags)
                         .join(Annotation, Annotation.sentence_id == SentenceRow.id)
                         .where(Annotation.origin == "argilla").order_by(Annotation.id)).all()
    for sid, author, tags in rows:
        out.setdefault((sid, author), []).append(list(tags))
    return out


def check_answers(versions: dict, stored: dict) -> dict:
    submitted = sum(len(h) for h in versions.values())
    acked = sum(1 for h in versions.values() for e in h if e["acked"])
    lost, duplicated, uncertain = [], [], 0
    for key, history in versions.items():
        have = stored.get(key, [])
        tags = [json.dumps(t) for t in have]
        for t in set(tags):
            if tags.count(t) > 1:
                duplicated.append({"key": list(key), "tags": json.loads(t), "times": tags.count(t)})
        last_acked = max((i for i, e in enumerate(history) if e["acked"]), default=None)
        if last_acked is None:
            continue
        # a later call that did not return may still have reached the server
        allowed = [history[last_acked]["tags"]] + [e["tags"] for e in history[last_acked + 1:]]
        latest = have[-1] if have else None
        if latest not in allowed:
            lost.append({"key": list(key), "expected_v": history[last_acked]["v"],
                         "store_latest": latest, "stored_versions": len(have)})
        elif latest != history[last_acked]["tags"]:
            uncertain += 1
    return {"records_answered": len(versions), "versions_submitted": submitted,
            "versions_acked": acked, "answers_checked": sum(
                1 for h in versions.values() if any(e["acked"] for e in h)),
            "stored_versions": sum(len(v) for k, v in stored.items() if k in versions),
            "lost": len(lost), "duplicated": len(duplicated),
            "latest_is_unacked_later_call": uncertain,
            "lost_examples": lost[:5], "duplicated_examples": duplicated[:5]}


def _runs_by_id(store) -> dict:
    import sqlalchemy as sa

    from concner.store.model_versions import Run

    with store.read() as s:
        return {r.id: r for r in s.scalars(sa.select(Run))}


def retrain_outcome(store, run_id: int) -> dict:
    """The requested run and its recovery follow-ups (``retry_of`` chain)."""
    from datetime import UTC, datetime

    runs = _runs_by_id(store)
    chain, rid = [], run_id
    while rid is not None and rid in runs:
        chain.append(runs[rid])
        rid = next((r.id for r in runs.values() if r.retry_of == rid), None)
    last = chain[-1] if chain else None
    logs = " ".join(" ".join(map(str, (r.progress or {}).get("log") or [])) for r in chain)
    # concner/method/training.py logs "resumed from stage 1 epoch 2 of 3" (and says why when not)
    resumed = bool(re.search(r"\bresumed from\b", logs, re.IGNORECASE))
    return {"run_id": run_id, "chain": [(r.id, r.status) for r in chain],
            "finished": last is not None and last.status == "succeeded",
            "status": None if last is None else last.status, "resumed": resumed,
            "error": None if last is None else (last.error or "")[:300],
            "finished_s_ago": None if last is None or last.finished_at is None else round(
                (datetime.now(UTC) - (last.finished_at if last.finished_at.tzinfo else
                                      last.finished_at.replace(tzinfo=UTC))).total_seconds(), 1)}


# -- the soak -------------------------------------------------------------------------
def soak(work: Path, *, duration: float, kills: int, seed: int, form: str,
         log=lambda m: print(m, flush=True)) -> dict:
    from prockit import ProcessScope

    rng = random.Random(seed)
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    ports = {"app": free_port(), "server": free_port(), "redis": free_port(),
             "search": free_port()}
    config = write_config(work, ports)
    files = write_data(work, form)
    result: dict = {"form": form, "seed": seed, "duration_s": duration, "kills_asked": kills,
                    "failures": [], "work": str(work)}
    kill_log: list[dict] = []
    result["kill_log"] = kill_log
    with ProcessScope(timeout=40) as scope:
        stack = Stack(work, config, ports, scope, log)
        annot = None
        try:
            log(f"chaos: starting concner up in {work}")
            stack.start()
            wait_for(lambda: not stack.up_alive() or all(stack.answering(p) for p in
                                                          ("app", "server", "redis", "search")),
                     420, "concner up: the app, argilla-server, Redis and the search emulator")
            if not stack.up_alive():
                raise RuntimeError(f"concner up exited at start: {stack.up_tail()}")
            steps = [("project", "create", PROJECT, "--source", "en", "--targets", "es",
                      "--labels", ",".join(LABELS), "--encoder", files["encoder"],
                      "--training-config", str(_training_toml(work))),
                     ("project", "import", PROJECT, files["source"], "--role", "source",
                      "--split", "train", "--lang", "en"),
                     ("project", "import", PROJECT, files["pool"], "--role", "target",
                      "--split", "pool", "--lang", "es", "--format", "text"),
                     ("project", "import", PROJECT, files["dev"], "--role", "target",
                      "--split", "dev", "--lang", "es")]
            for argv in steps:
                done = stack.cli(*argv)
                if done.returncode:
                    raise RuntimeError(f"concner {' '.join(argv[:2])} failed: {done.stderr[-800:]}")
            wait_for(lambda: stack.store.active_model_version(PROJECT), 300,
                     "the worker's first model (retrain on the imported labels)")
            annot = Annotators(stack, random.Random(seed + 1), log, pace_s=0.4)
            annot.connect()
            wait_for(lambda: annot.record_ids or annot.record_ids.update(annot._record_ids()),
                     180, "the sync to push the Spanish pool records to Argilla", interval=3)
            log(f"chaos: {len(annot.record_ids)} records in Argilla after "
                f"{time.monotonic() - t0:.0f} s; annotating and killing")
            annot.thread.start()
            requested: list[int] = []
            result["retrain_requests"] = []
            kill_log.extend(_kill_loop(stack, rng, duration, kills, requested, result, log))
            result["soak_s"] = round(time.monotonic() - t0, 1)
            # -- quiescence and the final sync --------------------------------------------
            annot.stop.set()
            annot.thread.join(timeout=90)
            if annot.thread.is_alive():
                result["failures"].append("the annotators did not stop within 90 s")
            if not stack.up_alive():
                result["failures"].append(f"concner up is not running (exit code "
                                          f"{stack.proc.returncode}): {stack.up_tail(600)}")
            else:
                try:
                    wait_for(lambda: all(stack.all_answering().values()), 180,
                             "every part of the stack to answer before the final sync")
                except TimeoutError as exc:
                    result["failures"].append(f"{exc}: {stack.all_answering()}")
            time.sleep(3)  # past the pull's watermark lag
            result["final_sync"] = (_final_sync(stack, log) if stack.up_alive() else
                                    {"ok": False, "error": "skipped: concner up is not running"})
            stored = stored_versions(stack.store)
            result["answers"] = check_answers(annot.versions, stored)
            result["annotator_calls"] = dict(annot.calls)
            result["annotator_errors"] = annot.errors[:10]
            # -- retrains --------------------------------------------------------------
            def all_done():
                outs = [retrain_outcome(stack.store, r) for r in sorted(set(requested))]
                # a failed run gets a recovery follow-up within seconds (stale lock, tick):
                # it is final only when none came for 30 s
                done = not stack.up_alive() or all(
                    o["status"] in ("succeeded", "cancelled") or o["status"] == "failed"
                    and (o["finished_s_ago"] or 0) > 30 for o in outs)
                return (outs,) if done else None
            try:
                (outs,) = wait_for(all_done, 420, "every requested retrain (and its recovery "
                                   "follow-ups) to finish", interval=2)
            except TimeoutError as exc:
                result["failures"].append(str(exc))
                outs = [retrain_outcome(stack.store, r) for r in sorted(set(requested))]
            result["retrains"] = {"requested": len(set(requested)),
                                  "finished": sum(o["finished"] for o in outs),
                                  "resumed": sum(o["resumed"] for o in outs), "runs": outs}
            # -- the stack and the status commands --------------------------------------
            result["stack_up"] = stack.up_alive() and all(stack.all_answering().values())
            result["parts_answering"] = stack.all_answering() if stack.up_alive() else {}
            result["status_commands"] = {}
            for name, argv in (("argilla status", ("argilla", "--folder", str(stack.home), "status")),
                               ("project status", ("project", "status", PROJECT))):
                done = stack.cli(*argv, timeout=120)
                tb = "Traceback" in done.stdout + done.stderr
                result["status_commands"][name] = {"exit": done.returncode, "traceback": tb,
                                                   "tail": (done.stdout + done.stderr)[-400:]}
        except Exception as exc:  # noqa: BLE001 (reported in the result, then re-checked)
            result["failures"].append(f"{type(exc).__name__}: {exc}")
            result["up_log_tail"] = stack.up_tail()
        finally:
            if annot is not None:
                annot.stop.set()
            if stack.proc is not None and stack.proc.poll() is None:
                stack.proc.send_signal(signal.SIGTERM)
                try:
                    stack.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    result["failures"].append("concner up did not stop within 60 s of SIGTERM")
            left = scope.remaining()
            result["left_after_sigterm"] = sorted(left)
            # the scope SIGTERMs, then SIGKILLs, every tagged process that is left
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["kills"] = summarize_kills(kill_log)
    return result


def _training_toml(work: Path) -> Path:
    path = work / "training.toml"
    path.write_text(TRAINING_TOML, "utf-8")
    return path


def _kill_loop(stack: Stack, rng: random.Random, duration: float, kills: int,
               requested: list[int], result: dict, log) -> list[dict]:
    # Rounds: each part once per round, in a random order. A pick at random killed one part
    # 7 times in 10 minutes, which the supervisor rightly gives up as a crash loop
    # (more than services.supervisor_max_restarts deaths in supervisor_window_s): the soak
    # checks recovery, not the give-up rule (tests/integration/test_supervisor.py checks that).
    order: list[str] = []
    gap = max(2.0, duration / max(kills, 1) / 2)
    out: list[dict] = []
    start = time.monotonic()
    next_retrain = start  # one retrain before the first kill
    result["pids_at_start"] = {part: stack.pid(part) for part in PARTS}
    log(f"chaos: pids at start: {result['pids_at_start']}")
    for part, pid in result["pids_at_start"].items():
        if pid is None:
            result["failures"].append(f"no live pid found for {part} before the first kill")
    # every kill asked for happens: a busy machine stretches the loop (a worker kill waits
    # for a training epoch), it does not silently drop the last parts of a round
    limit = duration * (KILL_LOOP_CAP if kills else 1.0)
    while time.monotonic() - start < limit:
        if kills and len(out) >= kills:
            break
        if not stack.up_alive():
            result["failures"].append(
                f"concner up exited (code {stack.proc.returncode}) after killing "
                f"{out[-1]['part'] if out else 'nothing'}: {stack.up_tail(600)}")
            break
        if time.monotonic() >= next_retrain:
            _request_retrain(stack, rng, requested, result, log)
            next_retrain = time.monotonic() + rng.uniform(20, 45)
        time.sleep(rng.uniform(0.5 * gap, 1.5 * gap))
        if not kills:  # a control run: annotate and retrain for --duration, kill nothing
            continue
        if len(out) >= len(order):
            order.extend(rng.sample(PARTS, len(PARTS)))
        part = order[len(out)]
        if part == "worker" and rng.random() < 0.7:
            # kill the worker while a full retrain trains past its first checkpoint, so the
            # re-queued run has something to resume (ask for one when none runs)
            if not _wait_training(stack, 5):
                _request_retrain(stack, rng, requested, result, log, full=True)
            _wait_training(stack, 90)
        pid = stack.pid(part)
        if pid is None:
            out.append({"part": part, "pid": None, "recovered": False, "recovery_s": None,
                        "note": "no live pid found to kill"})
            log(f"chaos: {part}: no live pid to kill")
            continue
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        try:
            wait_for(lambda part=part, pid=pid: not stack.up_alive()
                     or stack.answering(part, old_pid=pid)
                     and not (part not in ("rq", "worker") and stack.pid(part) == pid),
                     RECOVERY_BOUND_S, f"{part} to answer again after SIGKILL of pid {pid}",
                     interval=0.25)
            ok = stack.up_alive()
        except TimeoutError:
            ok = False
        rec = round(time.monotonic() - t_kill, 2) if ok else None
        out.append({"part": part, "pid": pid, "recovered": ok, "recovery_s": rec,
                    "at_s": round(t_kill - start, 1), "new_pid": stack.pid(part)})
        log(f"chaos: kill {len(out)}: {part} pid {pid} -> "
            + (f"answering again after {rec:.1f} s" if ok else "NOT recovered"))
    return out


def _wait_training(stack: Stack, timeout: float, min_epoch: int = 2) -> bool:
    """Wait until a retrain trains its epoch ``min_epoch`` or later of a training stage (its
    epoch-1 checkpoint is on disk), then a little more; False when none does in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for r in stack.store.runs(PROJECT, kind="retrain", limit=5):
                progress = r.progress or {}
                if (r.status == "running" and progress.get("stage") in ("stage1", "kd")
                        and (progress.get("epoch") or 0) >= min_epoch):
                    time.sleep(random.uniform(0.2, 1.0))
                    return True
        except Exception as exc:  # noqa: BLE001 (a locked SQLite file: look again)
            stack.log(f"chaos: reading runs failed ({exc}); trying again")
        time.sleep(0.2)
    return False


def _request_retrain(stack: Stack, rng: random.Random, requested: list[int], result: dict,
                     log, full: bool | None = None) -> None:
    full = rng.random() < 0.5 if full is None else full
    argv = ["retrain", PROJECT] + (["--full"] if full else [])
    try:
        done = stack.cli(*argv, timeout=60)
    except subprocess.TimeoutExpired:
        result["retrain_requests"].append({"argv": argv, "error": "timed out after 60 s"})
        return
    m = re.search(r"run (\d+)", done.stdout)
    entry = {"argv": argv, "exit": done.returncode, "run_id": int(m.group(1)) if m else None}
    if done.returncode or not m:
        entry["error"] = (done.stdout + done.stderr)[-300:]
    else:
        requested.append(entry["run_id"])
    result["retrain_requests"].append(entry)
    log(f"chaos: concner {' '.join(argv)} -> {done.stdout.strip()[:80]}")


def _final_sync(stack: Stack, log) -> dict:
    """Queue a sync (the worker runs it) and wait until every dataset's sync state is newer
    than the request."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from concner.store.model_versions import SyncState

    asked = datetime.now(UTC)
    code = f"from concner.jobs import queue as tasks; tasks.sync({PROJECT!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=stack.folder, env=stack.env,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode:
        return {"ok": False, "error": f"could not queue the sync: {done.stderr[-400:]}"}

    def synced():
        with stack.store.read() as s:
            rows = s.scalars(sa.select(SyncState)).all()
        argilla_rows = [r for r in rows if r.dataset.startswith(PROJECT)]
        fresh = [r for r in argilla_rows if r.last_sync_at is not None and
                 (r.last_sync_at if r.last_sync_at.tzinfo else
                  r.last_sync_at.replace(tzinfo=UTC)) >= asked]
        return len(argilla_rows) >= 2 and len(fresh) == len(argilla_rows) and \
            [(r.dataset, r.status, (r.message or "")[:120]) for r in argilla_rows]
    try:
        states = wait_for(synced, 180, "the final sync (every dataset's sync state newer "
                          "than the request)", interval=1)
        log(f"chaos: final sync done: {states}")
        return {"ok": True, "states": states}
    except TimeoutError as exc:
        return {"ok": False, "error": str(exc)}


def summarize_kills(kill_log: list[dict]) -> dict:
    out = {}
    for part in PARTS:
        rows = [k for k in kill_log if k["part"] == part]
        times = [k["recovery_s"] for k in rows if k["recovery_s"] is not None]
        out[part] = {"kills": len(rows), "recovered": len(times),
                     "recovery_median_s": round(statistics.median(times), 2) if times else None,
                     "recovery_max_s": round(max(times), 2) if times else None}
    return out


def problems(result: dict) -> list[str]:
    """What the soak proves wrong (empty: 0 lost, 0 duplicated, every retrain finished,
    every kill recovered, the stack up, no traceback)."""
    out = list(result.get("failures", []))
    ans = result.get("answers") or {}
    if not ans:
        out.append("no answers were checked")
    elif ans["lost"] or ans["duplicated"]:
        out.append(f"answers: {ans['lost']} lost, {ans['duplicated']} duplicated "
                   f"(e.g. {ans['lost_examples'][:1]} {ans['duplicated_examples'][:1]})")
    elif not ans["answers_checked"]:
        out.append("no acknowledged answer to check")
    ret = result.get("retrains") or {}
    if not ret.get("requested"):
        out.append("no retrain was requested (or none was queued)")
    if ret and ret["finished"] < ret["requested"]:
        bad = [r for r in ret["runs"] if not r["finished"]]
        out.append(f"retrains: {ret['finished']} of {ret['requested']} finished; e.g. {bad[:1]}")
    done = len(result.get("kill_log") or [])
    if result.get("kills_asked") and done < result["kills_asked"]:
        out.append(f"only {done} of {result['kills_asked']} kills happened within "
                   f"{KILL_LOOP_CAP:g} x --duration ({result.get('duration_s')} s)")
    for part, k in (result.get("kills") or {}).items():
        if k["kills"] > k["recovered"]:
            out.append(f"{part}: {k['kills'] - k['recovered']} of {k['kills']} kills not recovered")
    if not result.get("stack_up"):
        out.append(f"the stack is not up at the end: {result.get('parts_answering')}")
    for name, cmd in (result.get("status_commands") or {}).items():
        if cmd["exit"] or cmd["traceback"]:
            out.append(f"concner {name}: exit {cmd['exit']}, traceback {cmd['traceback']}")
    if result.get("left_after_sigterm"):
        out.append(f"processes left after concner up's SIGTERM: {result['left_after_sigterm']}")
    return out


def write_results(result: dict) -> None:
    from benchmarks.common import RESULTS, markdown_table, provenance

    result = {**result, "problems": problems(result), "provenance": provenance()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "chaos.json").write_text(json.dumps(result, indent=2, default=str) + "\n", "utf-8")
    rows = [[p, k["kills"], k["recovered"], k["recovery_median_s"], k["recovery_max_s"]]
            for p, k in result["kills"].items()]
    ans = result.get("answers") or {}
    ret = result.get("retrains") or {}
    prov = result["provenance"]
    md = ["# Chaos soak (issue 16)", "",
          (f"`{prov['command']}` — {prov['machine']}, commit {prov['commit']}, {prov['date']}; "
           f"{result.get('soak_s')} s of killing, {result['wall_s']} s in all, "
           f"seed {result['seed']}."),
          "", "## Kills and recovery (kill -> answering again)", "",
          markdown_table(["part", "kills", "recovered", "median s", "max s"], rows),
          "## Answers", "",
          markdown_table(["versions submitted", "acknowledged", "(record, annotator) checked",
                          "versions stored", "lost", "duplicated"],
                         [[ans.get("versions_submitted"), ans.get("versions_acked"),
                           ans.get("answers_checked"), ans.get("stored_versions"),
                           ans.get("lost"), ans.get("duplicated")]]),
          "## Retrains", "",
          markdown_table(["requested", "finished (succeeded)", "resumed from a checkpoint"],
                         [[ret.get("requested"), ret.get("finished"), ret.get("resumed")]]),
          "## Verdict", ""]
    probs = result["problems"]
    md += ([f"- {p[:400]}" for p in probs] if probs else
           ["Nothing lost, nothing duplicated, every retrain finished, every kill recovered."])
    (RESULTS / "chaos.md").write_text("\n".join(md) + "\n", "utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=900.0, help="seconds the kills are paced over (the loop ends at 3x this at the latest)")
    p.add_argument("--kills", type=int, default=25,
                   help="kills at most (0: a control run that kills nothing for --duration)")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--form", choices=("bench", "test"), default="bench",
                   help="bench: PAN-X data, writes benchmarks/results/chaos.*; test: synthetic")
    p.add_argument("--work", default=None, help="folder (default: a new temporary one)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="concner-chaos-"))
    result = soak(work, duration=args.duration, kills=args.kills, seed=args.seed, form=args.form)
    if args.form == "bench":
        write_results(result)
    found = problems(result)
    print(json.dumps({"kills": result["kills"], "answers": {
        k: v for k, v in (result.get("answers") or {}).items() if not k.endswith("examples")},
        "retrains": {k: v for k, v in (result.get("retrains") or {}).items() if k != "runs"},
        "problems": found}, indent=2, default=str))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
