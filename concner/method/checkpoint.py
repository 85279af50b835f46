"""Resumable training checkpoints: save, load and validate the state of a training run.

:func:`concner.method.training.train` with a ``resume_dir`` writes, at the end of every epoch, one
checkpoint into that folder, and on start resumes from it when it is valid. The folder:

- ``checkpoint.pt``: the last finished epoch (see :meth:`CheckpointDir.save_state`);
- ``best-<stage>-<epoch>.pt``: the trainable weights of the best dev epoch of the stage so
  far (written when the best changes; the checkpoint names the one it goes with);
- ``teacher.pt``: the stage-1 model that distillation started from (its logits are the
  teacher's, recomputed on resume).

Every file is written atomically: to a ``.tmp-*`` file in the same folder, fsynced, then
``os.replace``-d into place (and the folder fsynced), so a process killed mid-write leaves
the previous file intact and a leftover ``.tmp-*`` file, which the next run removes.

A checkpoint is resumed only when its format and its fingerprint (:func:`fingerprint`:
the training-relevant config, the training data and the starting weights) match the run;
otherwise (also when a file is unreadable or a referenced file is missing) it is ignored
with the reason, and training starts fresh. Files load on the CPU (``map_location``) with
``weights_only=True``; the trainer moves tensors to its device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from concner.sentence import Sentence

log = logging.getLogger(__name__)

FORMAT = 1
CHECKPOINT = "checkpoint.pt"
TEACHER = "teacher.pt"
#: config sections whose values change what training computes (not services, paths, ...)
FINGERPRINT_SECTIONS = ("data", "model", "loss", "training")


def fingerprint(config: Mapping, sentence_groups: Mapping[str, Iterable[Sentence] | None],
                pairs: Iterable[tuple[int, int]] | None,
                weights: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the sections :data:`FINGERPRINT_SECTIONS` of ``config`` (a
    ``Config.to_dict()``), each group of sentences (id, language, tokens, tags and the
    ``source_id`` that pairs a translation), the explicit ``pairs`` and the starting
    ``weights`` (name -> tensor of any shape; their bytes, shapes and dtypes)."""
    digest = hashlib.sha256()
    picked = {k: config.get(k) for k in FINGERPRINT_SECTIONS}
    digest.update(json.dumps(picked, sort_keys=True, default=str).encode())
    for name, sentences in sorted(sentence_groups.items()):
        digest.update(f"\0group:{name}\0".encode())
        for s in sentences or ():
            row = [s.id, s.lang, s.tokens, s.tags, s.meta.get("source_id")]
            digest.update(json.dumps(row, default=str).encode())
            digest.update(b"\n")
    digest.update(json.dumps([list(p) for p in pairs] if pairs is not None else None).encode())
    for name in sorted(weights):
        tensor = weights[name].detach().to("cpu").contiguous()
        digest.update(f"\0{name}:{tuple(tensor.shape)}:{tensor.dtype}\0".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def rng_state(device: torch.device) -> dict:
    """The RNG states a training step can draw from: python ``random``, numpy, torch CPU and,
    on a CUDA device, that device's generator."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
             "torch": torch.get_rng_state(), "cuda": None}
    if device.type == "cuda" and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping, device: torch.device) -> None:
    """Restore :func:`rng_state` (the CUDA state only on a CUDA device, when saved)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass
class Resumed:
    """A validated checkpoint: ``state`` as :meth:`CheckpointDir.save_state` wrote it, plus
    ``meta`` (its JSON part: history, best-epoch reports, counters)."""

    state: dict
    meta: dict

    @property
    def stage(self) -> str:
        return self.meta["stage"]

    @property
    def epoch(self) -> int:
        return self.meta["epoch"]

    def describe(self) -> str:
        """E.g. ``stage 1 epoch 2 of 3``: the last epoch the checkpoint finished."""
        stage = "stage 1" if self.stage == "stage1" else "stage 2 (KD)"
        return f"{stage} epoch {self.epoch} of {self.meta['epochs']}"


class CheckpointDir:
    """The checkpoint folder of one run whose :func:`fingerprint` is ``fp``."""

    def __init__(self, folder: str | os.PathLike, fp: str):
        self.folder, self.fp = Path(folder), fp
        #: why :meth:`load` ignored the checkpoint it found (None: nothing was ignored)
        self.reason: str | None = None

    # -- writing -----------------------------------------------------------------------
    def _write(self, name: str, obj) -> None:
        """``torch.save(obj)`` to ``name`` atomically (temp file, fsync, replace)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as fh:
                torch.save(obj, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power cut
        finally:
            os.close(fd)

    def save_weights(self, name: str, weights: Mapping[str, torch.Tensor]) -> None:
        """Write ``weights`` (name -> tensor) as file ``name``, tagged with the fingerprint."""
        self._write(name, {"format": FORMAT, "fingerprint": self.fp,
                           "weights": {k: v.detach().cpu() for k, v in weights.items()}})

    def save_state(self, state: Mapping, meta: Mapping) -> None:
        """Write the checkpoint: ``state`` holds tensors and state dicts (``model``,
        ``optimizer``, ``scheduler``, ``scaler``, ``rng``, ``generator``); ``meta`` is
        JSON-able (stage, epoch, epochs, step, history, best-epoch state, file names it
        refers to). Then remove ``best-*.pt`` files ``meta`` no longer refers to."""
        meta_json = json.dumps(meta, default=float)
        self._write(CHECKPOINT, {"format": FORMAT, "fingerprint": self.fp, "meta": meta_json,
                                 **state})
        keep = {meta.get("best_file"), meta.get("teacher_file")}
        for old in self.folder.glob("best-*.pt"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    # -- reading -----------------------------------------------------------------------
    def _read(self, name: str) -> dict:
        obj = torch.load(self.folder / name, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{name} is not a format-{FORMAT} checkpoint")
        return obj

    def load_weights(self, name: str) -> dict[str, torch.Tensor]:
        return self._read(name)["weights"]

    def load(self) -> Resumed | None:
        """The checkpoint to resume, or None (no checkpoint, or one that is unreadable, of
        another run or config, or refers to a missing file: the reason is logged). Leftover
        temp files of writes that were killed are removed first."""
        if not self.folder.is_dir():
            return None
        for leftover in self.folder.glob(".tmp-*"):
            log.info("removing %s (a checkpoint write that did not finish)", leftover)
            leftover.unlink(missing_ok=True)
        path = self.folder / CHECKPOINT
        if not path.is_file():
            return None
        try:
            state = self._read(CHECKPOINT)
            if state.get("fingerprint") != self.fp:
                self.reason = (f"checkpoint {path} is from a different run (config, training "
                               "data or starting model differ): starting fresh")
                log.warning("%s", self.reason)
                return None
            meta = json.loads(state.pop("meta"))
            for ref in (meta.get("best_file"), meta.get("teacher_file")):
                if ref and self._read(ref).get("fingerprint") != self.fp:
                    raise ValueError(f"{ref} belongs to a different run")
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: start fresh
            self.reason = f"checkpoint {path} cannot be resumed ({exc}): starting fresh"
            log.warning("%s", self.reason)
            return None
        return Resumed(state, meta)

    def clear(self) -> None:
        """Delete the folder (the run finished: nothing to resume)."""
        clear(self.folder)


def clear(folder: str | os.PathLike) -> None:
    """Delete a checkpoint folder and everything in it (no error when it is missing)."""
    shutil.rmtree(folder, ignore_errors=True)
