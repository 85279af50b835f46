"""A killed training resumes from its last epoch checkpoint (concner/method/checkpoint.py):

- real processes SIGKILLed during stage 1 and during stage 2 (KD), resumed by another
  process, end with exactly the weights, history and dev metrics of a run that was never
  interrupted, and redo fewer epochs;
- a checkpoint left half-written, truncated, of another config or data, or missing a file
  it names is not resumed and does not crash;
- the worker: a retrain interrupted by a shutdown, or whose worker process is SIGKILLed,
  is re-queued and the new run resumes, logs it, and deletes the checkpoint at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from storekit import TINY_TRAINING, make_project, make_sentences, service_env
from tiny import make_tiny_encoder_dir

from concner.config import config_from_dict, load_config
from concner.jobs.context import JobContext, resume_dir
from concner.jobs.registry import ModelRegistry
from concner.jobs.retrain import execute_retrain
from concner.method.checkpoint import CHECKPOINT, TEACHER
from concner.method.training import TrainData, train
from concner.store import Store

ROOT = Path(__file__).resolve().parents[3]
torch.set_num_threads(1)

# one training run in a child process: tiny model, stage 1 (CE + LCL + TCL with dropout,
# best epoch chosen on dev) then KD with a source batch riding along (lambda_src > 0)
CHILD = textwrap.dedent("""
    import json, sys, time
    import torch
    from storekit import make_sentences
    from concner.config import config_from_dict
    from concner.method.training import TrainData, train

    encoder, resume, out, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    torch.set_num_threads(1)
    src = make_sentences("src", 16, "en", seed=1)
    tr = make_sentences("tr-", 16, "de", seed=2, meta_fn=lambda i: {"source_id": f"src{i}"})
    data = TrainData(src, tr, unlabelled_target=make_sentences("pool-", 16, "de", seed=3,
                                                               labelled=False),
                     dev={"de": make_sentences("dev-", 8, "de", seed=4)})
    config = config_from_dict({
        "model": {"encoder": encoder, "max_length": 32, "window_stride": 4,
                  "projection_dim": 16},
        "loss": {"kd": True, "use_translation": True},
        "training": {"epochs": 3, "kd_epochs": 2, "batch_size": 4, "num_threads": 1,
                     "device": "cpu", "learning_rate": 3e-3, "head_learning_rate": 1e-2,
                     "seed": 7}}, env={})
    ran = []

    def callback(event):
        if event.stage != "eval":
            ran.append([event.stage, event.epoch])
            print("STEP", event.stage, event.epoch, event.step, flush=True)
            time.sleep(delay)  # slow enough to be killed in the middle of an epoch

    result = train(config, data, callback=callback,
                   resume_dir=None if resume == "-" else resume)
    torch.save(result.bundle.model.state_dict(), out + ".pt")
    history = [{k: v for k, v in r.items() if k not in ("seconds", "timing")}
               for r in result.history]
    with open(out, "w") as fh:
        json.dump({"history": history, "dev": result.dev_metrics, "resumed": result.resumed,
                   "epochs_run": sorted({tuple(r) for r in ran})}, fh)
""")


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("CONCNER_CONFIG", None)
    return env


def _child(encoder: str, resume, out: Path, delay: float = 0.0) -> subprocess.Popen:
    with open(f"{out}.log", "w") as err:  # the child keeps its own copy of the fd
        return subprocess.Popen([sys.executable, "-c", CHILD, encoder, str(resume or "-"),
                                 str(out), str(delay)], cwd=ROOT, env=_env(),
                                stdout=subprocess.PIPE, stderr=err, text=True)


def _stderr(out: Path) -> str:
    return Path(f"{out}.log").read_text()[-3000:]


def _finish(proc: subprocess.Popen, out: Path) -> dict:
    proc.communicate(timeout=300)
    assert proc.returncode == 0, _stderr(out)
    result = json.loads(out.read_text())
    result["weights"] = torch.load(f"{out}.pt", weights_only=True)
    return result


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> str:
    return str(make_tiny_encoder_dir(tmp_path_factory.mktemp("resume") / "encoder"))


@pytest.fixture(scope="module")
def uninterrupted(encoder, tmp_path_factory) -> dict:
    """The same training, never interrupted and without checkpoints, in its own process."""
    out = tmp_path_factory.mktemp("reference") / "result.json"
    return _finish(_child(encoder, None, out), out)


def _kill_during(proc: subprocess.Popen, folder: Path, stage: str, epoch: int,
                 out: Path) -> None:
    """SIGKILL ``proc`` at its first step of ``stage`` ``epoch``, once the checkpoint of the
    epoch before is on disk."""
    for line in proc.stdout:
        word, at_stage, at_epoch, _ = (line.split() + ["", "", "", ""])[:4]
        if word == "STEP" and at_stage == stage and int(at_epoch) == epoch:
            assert (folder / CHECKPOINT).is_file()
            break
    _sigkill(proc, lambda: _stderr(out))


def _sigkill(proc: subprocess.Popen, why) -> None:
    """SIGKILL ``proc`` and check it died of it (not of its own accord: ``why()`` says)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, why()


@pytest.mark.parametrize("stage, epoch, resumed, redone", [
    ("stage1", 2, "stage 1 epoch 1 of 3", [["kd", 1], ["kd", 2], ["stage1", 2], ["stage1", 3]]),
    ("kd", 2, "stage 2 (KD) epoch 1 of 2", [["kd", 2]]),
])
def test_sigkilled_training_resumes_to_the_same_model(encoder, uninterrupted, tmp_path, stage,
                                                      epoch, resumed, redone):
    folder = tmp_path / "ckpt"
    victim = _child(encoder, folder, tmp_path / "killed.json", delay=0.05)
    _kill_during(victim, folder, stage, epoch, tmp_path / "killed.json")
    assert not (tmp_path / "killed.json").exists()
    if stage == "kd":
        assert (folder / TEACHER).is_file()

    out = tmp_path / "resumed.json"
    again = _finish(_child(encoder, folder, out), out)
    assert again["resumed"] == resumed
    assert again["epochs_run"] == redone  # only the epochs after the checkpoint
    assert len(again["epochs_run"]) < len(uninterrupted["epochs_run"]) == 5
    assert uninterrupted["resumed"] is None
    # exactly the run that was never interrupted: history (losses, dev F1 per epoch),
    # the returned model's dev report and every weight
    assert again["history"] == uninterrupted["history"]
    assert again["dev"] == uninterrupted["dev"]
    assert again["weights"].keys() == uninterrupted["weights"].keys()
    different = [k for k, v in again["weights"].items()
                 if not torch.equal(v, uninterrupted["weights"][k])]
    assert not different


# -- checkpoints that must not be resumed ----------------------------------------------
def _config(encoder: str, **training):
    values = {"epochs": 2, "kd_epochs": 0, "batch_size": 4, "num_threads": 1, "device": "cpu",
              "learning_rate": 3e-3, "head_learning_rate": 1e-2, "seed": 5, **training}
    return config_from_dict({"model": {"encoder": encoder, "max_length": 32,
                                       "window_stride": 4, "projection_dim": 16},
                             "loss": {"kd": False, "use_translation": False},
                             "training": values}, env={})


def _data(n: int = 12) -> TrainData:
    return TrainData(make_sentences("src", n, "en", seed=1),
                     dev={"en": make_sentences("dev-", 6, "en", seed=4)})


def _run(config, data, folder):
    notes, epochs = [], set()
    result = train(config, data, resume_dir=folder, notify=notes.append,
                   callback=lambda e: epochs.add((e.stage, e.epoch)))
    return result, notes, epochs


def _same_model(a, b) -> bool:
    sa, sb = a.bundle.model.state_dict(), b.bundle.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_broken_or_foreign_checkpoints_are_not_resumed(encoder, tmp_path):
    config, data = _config(encoder), _data()
    fresh = train(config, data)
    all_epochs = {("stage1", 1), ("stage1", 2), ("eval", 1), ("eval", 2)}

    # a finished run's checkpoint is resumed (nothing left to train: same model)
    done = tmp_path / "done"
    _run(config, data, done)
    good = (done / CHECKPOINT).read_bytes()
    again, notes, epochs = _run(config, data, done)
    assert notes == ["resumed from stage 1 epoch 2 of 2"] and epochs == set()
    assert _same_model(again, fresh) and again.history[-1]["score"] == fresh.history[-1]["score"]

    cases = {
        # killed mid-write: only a garbage temp file next to no checkpoint
        "tmp-only": lambda f: (f / ".tmp-checkpoint.pt-dead").write_bytes(good[:len(good) // 3]),
        # a truncated checkpoint (as if a non-atomic write had been killed) and garbage
        "truncated": lambda f: (f / CHECKPOINT).write_bytes(good[:len(good) // 2]),
        "garbage": lambda f: (f / CHECKPOINT).write_bytes(b"not a checkpoint\0" * 64),
    }
    for name, make in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        make(folder)
        result, notes, epochs = _run(config, data, folder)
        assert result.resumed is None and epochs == all_epochs, name
        assert _same_model(result, fresh), name
        assert not list(folder.glob(".tmp-*")), name
        if name != "tmp-only":
            assert len(notes) == 1 and "cannot be resumed" in notes[0], (name, notes)
        assert (folder / CHECKPOINT).is_file()  # the new run's own checkpoint

    # a valid checkpoint of another config, or of other training data: start fresh
    for name, other_config, other_data in (("config", _config(encoder, learning_rate=1e-3), data),
                                           ("data", config, _data(11))):
        folder = tmp_path / f"other-{name}"
        _run(other_config, other_data, folder)
        result, notes, epochs = _run(config, data, folder)
        assert result.resumed is None and epochs == all_epochs, name
        assert len(notes) == 1 and "different run" in notes[0], (name, notes)
        assert _same_model(result, fresh), name

    # a checkpoint naming a best-epoch file that is gone
    folder = tmp_path / "no-best"
    _run(config, data, folder)
    for best in folder.glob("best-*.pt"):
        best.unlink()
    result, notes, epochs = _run(config, data, folder)
    assert result.resumed is None and "cannot be resumed" in notes[0]
    assert _same_model(result, fresh)


def test_checkpoint_every_epoch_false_writes_nothing(encoder, tmp_path):
    result, notes, _ = _run(_config(encoder, checkpoint_every_epoch=False), _data(),
                            tmp_path / "off")
    assert result.resumed is None and notes == [] and not (tmp_path / "off").exists()


# -- the worker --------------------------------------------------------------------------
def _worker_training(epochs: int) -> dict:
    return {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": epochs}}


class _ShutdownInEpoch2(Store):
    """A store that tells the worker to shut down when training reports epoch 2 (as
    SIGTERM would): the run stops at its next step."""

    ctx: JobContext | None = None

    def update_progress(self, run_id, progress):
        if self.ctx is not None and progress.get("stage") == "stage1" and \
                progress.get("epoch", 0) >= 2:
            self.ctx.shutdown.set()
        return super().update_progress(run_id, progress)


def _log(store, run_id) -> list[str]:
    return (store.get_run(run_id).progress or {}).get("log", [])


def test_worker_run_interrupted_after_epoch_1_resumes_when_requeued(tmp_path, encoder):
    store = _ShutdownInEpoch2(f"sqlite:///{tmp_path / 'store.db'}")
    for name in ("p", "q"):  # q: the same project, never interrupted
        make_project(store, name, encoder, n_source=24, n_dev=8, n_pool=8,
                     training=_worker_training(3))
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                     "w")
    folder = resume_dir(ctx, "p")
    assert folder.parent == Path(ctx.registry.project_dir("p"))

    store.ctx = ctx
    first, _ = store.request_run("p")
    assert execute_retrain(ctx, "p", first) == "failed"
    assert "re-queued" in store.get_run(first).error
    assert (folder / CHECKPOINT).is_file()  # interrupted: the checkpoint stays
    store.ctx = None
    ctx.shutdown.clear()
    ((project, follow),) = store.pending_retrains()
    assert project == "p" and follow != first

    assert execute_retrain(ctx, "p", follow) == "succeeded"
    assert "resumed from stage 1 epoch 1 of 3" in _log(store, follow)
    assert not folder.exists()  # finished: nothing to resume any more

    reference, _ = store.request_run("q")
    assert execute_retrain(ctx, "q", reference) == "succeeded"
    assert not any("resumed" in line for line in _log(store, reference))
    f1 = {r: {m.language: m.f1 for m in store.metrics(n, run_id=r)}
          for n, r in (("p", follow), ("q", reference))}
    assert f1[follow] and f1[follow] == f1[reference]


WORKER = textwrap.dedent("""
    import sys, time
    from concner.config import load_config
    from concner.jobs.registry import ModelRegistry
    from concner.jobs.context import JobContext, RunProgress
    from concner.jobs.retrain import execute_retrain
    from concner.store import Store

    url, models, run_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    slow = RunProgress.__call__

    def call(self, event):  # a slow machine: each step takes a while
        time.sleep(0.1)
        slow(self, event)

    RunProgress.__call__ = call
    store = Store(url)
    ctx = JobContext(store, ModelRegistry(store, models), load_config(env={}), "doomed")
    execute_retrain(ctx, "p", run_id)
""")


@pytest.mark.parametrize("labels_arrive", [False, True])
def test_worker_sigkilled_after_epoch_1_is_requeued_and_resumes(tmp_path, encoder,
                                                                 labels_arrive):
    """The re-queued run resumes even when annotators kept labelling after the kill (the
    long chaos soak's case): it trains the lost run's data, and a follow-up retrain is
    queued for what arrived since."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    make_project(store, "p", encoder, n_source=24, n_dev=8, n_pool=8,
                 training=_worker_training(3))
    ctx = JobContext(store, ModelRegistry(store, str(tmp_path / "models")), load_config(env={}),
                     "survivor")
    folder = resume_dir(ctx, "p")
    doomed, _ = store.request_run("p")
    with open(tmp_path / "worker.log", "w") as err:
        worker = subprocess.Popen([sys.executable, "-c", WORKER, url,
                                   str(tmp_path / "models"), str(doomed)], cwd=ROOT,
                                  env=service_env(tmp_path, url), stdout=subprocess.DEVNULL,
                                  stderr=err)
    try:
        deadline = time.time() + 120
        while not (folder / CHECKPOINT).is_file():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint after 120 s"
            time.sleep(0.02)
    finally:
        _sigkill(worker, lambda: (tmp_path / "worker.log").read_text()[-3000:])
    assert store.get_run(doomed).status == "running"  # nobody has noticed yet
    lost_counts = store.get_run(doomed).label_counts
    if labels_arrive:  # an annotator labels two pool sentences meanwhile, and a file comes
        for sent in store.sentences("p", role="target", split="pool")[:2]:
            store.add_annotation("p", sent.id, ["O"] * len(sent.tokens), author="a1")
        store.import_sentences("p", make_sentences("late-", 3, "en", seed=9), role="source",
                               split="train")

    # what the next worker's tick does: the dead worker's lock is stale, the run re-queued
    (recovered,) = store.recover_stale(0)
    assert recovered.lost_run_id == doomed
    assert execute_retrain(ctx, "p", recovered.queued_run_id) == "succeeded"
    retry = store.get_run(recovered.queued_run_id)
    assert retry.retry_of == doomed
    assert "resumed from stage 1 epoch 1 of 3" in _log(store, retry.id)
    assert {k: retry.label_counts[k] for k in ("source", "target", "watermark")} == {
        k: lost_counts[k] for k in ("source", "target", "watermark")}  # the lost run's data
    assert not folder.exists()
    follow = store.lock_state("p").queued_run_id
    if labels_arrive:
        assert follow is not None and store.get_run(follow).reason == "new_labels"
        assert any(f"queued run {follow}" in line for line in _log(store, retry.id))
    else:
        assert follow is None


def _train_cli(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    script = "import sys; from concner.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", script, "train", "--config", str(config), "--out", str(out),
            "--quiet", *extra]
    with open(f"{out}.log", "w") as err:
        return subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=err)


def test_concner_train_sigkilled_after_epoch_1_resumes_when_rerun(encoder, tmp_path):
    """``concner train`` rerun after a SIGKILL resumes from OUT/.resume and makes the model
    an uninterrupted run of the same config makes; the checkpoint goes once it is saved."""
    from safetensors.torch import load_file

    from concner.corpus import write_conll
    from concner.method.model import WEIGHTS_FILE

    write_conll(make_sentences("src", 240, "en", seed=1), tmp_path / "train-en.tsv")
    write_conll(make_sentences("dev", 16, "en", seed=4), tmp_path / "dev-en.tsv")
    config = tmp_path / "run.toml"
    config.write_text(f"""
[data]
source_lang = "en"
target_langs = []
[model]
encoder = "{encoder}"
max_length = 32
window_stride = 4
projection_dim = 16
[loss]
kd = false
use_translation = false
[training]
epochs = 3
batch_size = 4
num_threads = 1
device = "cpu"
learning_rate = 3e-3
head_learning_rate = 1e-2
seed = 7
[paths]
train = "{tmp_path}/train-{{lang}}.tsv"
dev = {{ en = "{tmp_path}/dev-en.tsv" }}
""", encoding="utf-8")
    reference = tmp_path / "reference"
    done = _train_cli(config, reference)
    assert done.wait(300) == 0, Path(f"{reference}.log").read_text()[-2000:]

    out = tmp_path / "model"
    proc = _train_cli(config, out)
    checkpoint = out / ".resume" / CHECKPOINT
    deadline = time.monotonic() + 300
    while not checkpoint.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.is_file(), Path(f"{out}.log").read_text()[-2000:]
    _sigkill(proc, lambda: Path(f"{out}.log").read_text()[-2000:])
    assert not (out / WEIGHTS_FILE).exists()  # killed before the model was saved

    rerun = _train_cli(config, out)
    assert rerun.wait(300) == 0, Path(f"{out}.log").read_text()[-2000:]
    log = Path(f"{out}.log").read_text()
    assert "checkpoint: resumed from stage 1 epoch" in log, log[-2000:]
    assert not (out / ".resume").exists()
    got, want = load_file(out / WEIGHTS_FILE), load_file(reference / WEIGHTS_FILE)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    history = [{k: v for k, v in h.items() if k not in ("seconds", "timing")}
               for h in json.loads((out / "metrics.json").read_text())["history"]]
    assert history == [{k: v for k, v in h.items() if k not in ("seconds", "timing")}
                       for h in json.loads((reference / "metrics.json").read_text())["history"]]
