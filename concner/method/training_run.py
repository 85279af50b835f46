"""One training run of :func:`concner.method.training.train` (see that module's doc for
what the stages do): the model set up from ``init`` or ``model.encoder``, the data checks,
stage 1, stage 2 (the teacher's soft labels, extra teachers), the shared epoch loop (AdamW,
warmup + linear decay, clipping, bf16 autocast on CUDA, timing, progress events), dev
evaluation and best-epoch selection, and the per-epoch checkpoints a resumed run continues
from."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Sequence

import torch

from concner.config import Config
from concner.errors import ConfigError, DataFormatError
from concner.labels import OUTSIDE, LabelSchema
from concner.method.batches import (
    DistillationBatches,
    Stage1Batches,
    align_entities,
    pair_translations,
    teacher_logits,
)
from concner.method.checkpoint import (
    TEACHER,
    CheckpointDir,
    Resumed,
    fingerprint,
    rng_state,
    set_rng_state,
)
from concner.method.embedding_rows import train_used_rows, used_piece_ids
from concner.method.encoding import Collator, Encoded, encode_sentences
from concner.method.evaluation import evaluate
from concner.method.inference import Predictor
from concner.method.losses import average_teachers
from concner.method.model import NerBundle, build_bundle
from concner.method.optim import (
    freeze_word_embeddings,
    linear_schedule,
    make_optimizer,
    restore,
    snapshot,
)
from concner.method.precision import cpu_has_native_bf16
from concner.method.step_losses import StepLoss, distillation_step_loss, stage1_step_loss
from concner.method.training_types import (
    ProgressCallback,
    ProgressEvent,
    TrainData,
    chosen_epochs,
)
from concner.sentence import Sentence

# the run logs under the public module's name (the worker's log lines and log filters name it)
log = logging.getLogger("concner.method.training")

__all__ = ["TrainingRun"]


class TrainingRun:
    """State of one training run of :func:`concner.method.training.train`: the model being
    trained, the history, the best dev reports, the checkpoint folder; :meth:`run` runs the
    stages."""

    def __init__(self, config: Config, data: TrainData, init: NerBundle | None,
                 callback: ProgressCallback | None, device: torch.device):
        self.config, self.data, self.callback, self.device = config, data, callback, device
        self.lc, self.tc = config.loss, config.training
        if init is None:
            schema = LabelSchema(config.data.entity_types)
            self.bundle = build_bundle(config.model.encoder, schema, config.model)
        else:
            self.bundle = init.clone()
        for param in self.bundle.model.parameters():  # a warm start's flags do not carry over
            param.requires_grad_(True)
        if config.model.freeze_embeddings:
            freeze_word_embeddings(self.bundle.model)
        self.bundle.model.to(device)
        self.schema = self.bundle.schema
        self.collate = Collator(self.bundle.tokenizer.pad_token_id)
        self.generator = torch.Generator().manual_seed(self.tc.seed)
        self.history: list[dict] = []
        self.best_reports: dict[str, dict] = {}
        self.n_truncated = 0
        self.keep_teacher, self.teacher = False, None
        self.entity_alignment: dict[str, int] | None = None  # tcl_level = "entity" only
        self.extra_teachers: list[NerBundle] = []
        self.ckpt: CheckpointDir | None = None
        self.resumed: Resumed | None = None
        self._prior_truncated = 0  # n_truncated before the current stage encoded its data
        empty = [lang for lang, sentences in data.dev.items() if not sentences]
        if empty:
            log.info("no dev sentences for %s: not evaluated", ", ".join(empty))
        self.dev = {lang: sentences for lang, sentences in data.dev.items() if sentences}
        self._check_data()

    # -- data ---------------------------------------------------------------------------
    def _check_data(self) -> None:
        untagged = [s.id for s in self.data.source if s.tags is None]
        if untagged:
            raise DataFormatError(f"{len(untagged)} source sentences have no tags (first: "
                                  f"{untagged[0]}); training needs labelled source sentences")
        if self.tc.epochs > 0 and not self.data.source:
            raise ConfigError("no source sentences to train on; give a labelled training file "
                              "or set training.epochs = 0 to distil from an existing model")
        if self.tc.epochs > 0 and self.lc.use_translation and not self.data.translations:
            log.warning("loss.use_translation is true but there are no translations yet: "
                        "stage 1 trains on the source sentences only (no TCL)")
        for lang, sentences in self.dev.items():
            untagged = [s.id for s in sentences if s.tags is None]
            if untagged:
                raise DataFormatError(f"{len(untagged)} dev sentences ({lang}) have no tags "
                                      f"(first: {untagged[0]}); dev sets must be labelled")
        if self.dev:
            self._selection_langs()  # fail before training, not after the first epoch
        if self.lc.kd and self.tc.kd_epochs > 0 and not self.data.unlabelled_target:
            log.warning("loss.kd is true but there are no unlabelled target sentences: "
                        "distillation (stage 2) is skipped")

    def _encode(self, sentences: list[Sentence], labelled: bool = True) -> list[Encoded]:
        encoded, truncated = encode_sentences(self.bundle.tokenizer, sentences,
                                              self.schema if labelled else None,
                                              self.config.model.max_length)
        if truncated:
            log.warning("%d of %d sentences are longer than model.max_length=%d sub-words and "
                        "were truncated for training", truncated, len(sentences),
                        self.config.model.max_length)
        self.n_truncated += truncated
        return encoded

    def set_extra_teachers(self, teachers: Sequence[NerBundle]) -> None:
        for k, teacher in enumerate(teachers):
            if teacher.schema != self.schema:
                raise ConfigError(f"extra teacher {k + 1} predicts {teacher.schema.tags}, the "
                                  f"model trains {self.schema.tags}: distillation averages "
                                  "distributions over the same labels")
        self.extra_teachers = list(teachers)

    # -- checkpoints --------------------------------------------------------------------
    def use_checkpoints(self, folder: str | os.PathLike,
                        notify: Callable[[str], None] | None) -> None:
        """Checkpoint into ``folder``; pick up the checkpoint there when it is this run's
        (same config, data and starting weights), else start fresh (and clear it)."""
        data = self.data
        groups = {"source": data.source, "translations": data.translations,
                  "unlabelled_target": data.unlabelled_target,
                  **{f"dev:{lang}": sentences for lang, sentences in self.dev.items()}}
        weights = dict(self.bundle.model.state_dict())
        for k, teacher in enumerate(self.extra_teachers):  # a resumed run distils from them too
            weights.update({f"extra_teacher{k}.{n}": t
                            for n, t in teacher.model.state_dict().items()})
        fp = fingerprint(self.config.to_dict(), groups, data.pairs, weights)
        self.ckpt = CheckpointDir(folder, fp)
        self.resumed = self.ckpt.load()
        if self.resumed is not None:
            line = f"resumed from {self.resumed.describe()}"
            log.info("%s (checkpoint %s)", line, folder)
        elif self.ckpt.reason is not None:
            line = self.ckpt.reason
            self.ckpt.clear()
        else:
            return
        if notify is not None:
            notify(line)

    def _save_checkpoint(self, stage: str, epoch: int, epochs: int, step: int, optimizer,
                         scheduler, best: dict, batches) -> None:
        """The end of ``epoch``: everything the next epoch needs (see concner.method.checkpoint)."""
        source_draws = step if stage == "kd" and getattr(batches, "source", None) else 0
        meta = {"stage": stage, "epoch": epoch, "epochs": epochs, "step": step,
                "best_score": best["score"] if best["score"] > float("-inf") else None,
                "best_file": best["file"], "best_reports": self.best_reports,
                "history": self.history, "prior_truncated": self._prior_truncated,
                "teacher_file": TEACHER if stage == "kd" else None,
                # the batch order is a function of (seed, epoch): the next epoch's is known;
                # distillation's source batches cycle on, one drawn per step
                "data_order": {"seed": batches.sampler.seed, "next_epoch": epoch + 1,
                               "source_draws": source_draws}}
        state = {"model": self.bundle.model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": None,  # bf16 needs no scaler
                 "rng": rng_state(self.device), "generator": self.generator.get_state()}
        self.ckpt.save_state(state, meta)

    def _resume_loop(self, resume: Resumed, optimizer, scheduler, batches) -> dict:
        """Load a checkpoint's state into the model, optimizer, schedule, RNGs and data
        order; returns the loop's ``{"epoch", "step", "best"}`` to continue from."""
        state, meta = resume.state, resume.meta
        self.bundle.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.history = meta["history"]
        self.best_reports = meta["best_reports"]
        score = meta["best_score"]
        best = {"score": float("-inf") if score is None else score, "file": meta["best_file"],
                "state": self.ckpt.load_weights(meta["best_file"]) if meta["best_file"] else None}
        if meta["data_order"]["source_draws"]:
            batches.skip_source_batches(meta["data_order"]["source_draws"])
        self.generator.set_state(state["generator"])
        set_rng_state(state["rng"], self.device)
        return {"epoch": meta["epoch"], "step": meta["step"], "best": best}

    # -- the run ------------------------------------------------------------------------
    def run(self) -> None:
        resume = self.resumed
        if self.tc.epochs > 0 and (resume is None or resume.stage == "stage1"):
            self._stage1(resume)
        if self.lc.kd and self.tc.kd_epochs > 0 and self.data.unlabelled_target:
            self._stage2(resume if resume is not None and resume.stage == "kd" else None)
        missing = [lang for lang in self.dev if lang not in self.best_reports]
        if missing:  # languages not needed for selection are evaluated once, at the end
            reports, _ = self._evaluate(missing, score=False)
            merged = {**self.best_reports, **reports}
            self.best_reports = {lang: merged[lang] for lang in self.dev}

    def _stage1(self, resume: Resumed | None = None) -> None:
        self._prior_truncated = self.n_truncated
        source = self._encode(self.data.source)
        translations, pairs = None, []
        if self.lc.use_translation and self.data.translations:
            pairs = pair_translations(self.data.source, self.data.translations, self.data.pairs)
            translations = self._encode(list(self.data.translations))
        entity_pairs = self._align_entities(pairs) if pairs and self.lc.tcl_level == "entity" else None
        batches = Stage1Batches(source, translations, pairs, self.tc.batch_size, self.tc.seed,
                                self.collate, self.device, entity_pairs)
        o_label_id = self.schema.tag_to_id[OUTSIDE]

        def loss_fn(batch: dict[str, torch.Tensor]) -> StepLoss:
            return stage1_step_loss(self.bundle.model, batch, self.lc, o_label_id=o_label_id,
                                    generator=self.generator)

        self._loop("stage1", batches, loss_fn, self.tc.epochs, resume,
                   self._used_rows(source, translations))

    def _align_entities(self, pairs: list[tuple[int, int]]) -> list:
        """Per pair, its source entities' spans in the translation (None: not recoverable,
        the pair is skipped by TCL); the counts go into ``entity_alignment``."""
        out = [align_entities(self.data.source[i].tags, self.data.translations[j].tags)
               for i, j in pairs]
        self.entity_alignment = {
            "pairs_aligned": sum(1 for a in out if a), "pairs_without_entities": out.count([]),
            "pairs_skipped": out.count(None), "entities": sum(len(a or []) for a in out)}
        log.info("entity-level TCL: %(pairs_aligned)d pairs aligned (%(entities)d entities), "
                 "%(pairs_skipped)d skipped (entities per type differ in number, or untagged), "
                 "%(pairs_without_entities)d without entities", self.entity_alignment)
        return out

    def kd_sentences(self) -> list[Sentence]:
        """The unlabelled target sentences stage 2 distils on: all of them, or a sample of
        ``training.kd_max_sentences`` drawn with the run seed (kept in their input order)."""
        pool, cap = list(self.data.unlabelled_target), self.tc.kd_max_sentences
        if cap == 0 or len(pool) <= cap:
            return pool
        keep = sorted(random.Random(self.tc.seed).sample(range(len(pool)), cap))
        log.info("distilling on %d of %d unlabelled target sentences (training.kd_max_sentences)",
                 cap, len(pool))
        return [pool[i] for i in keep]

    def _stage2(self, resume: Resumed | None = None) -> None:
        if resume is not None:  # stage 1 was not redone: its count comes from the checkpoint
            self.n_truncated = resume.meta["prior_truncated"]
        self._prior_truncated = self.n_truncated
        sentences = self.kd_sentences()
        target = self._encode(sentences, labelled=False)
        if resume is not None:  # the teacher: the stage-1 model stage 2 started from
            restore(self.bundle.model, self.ckpt.load_weights(resume.meta["teacher_file"]))
        elif self.ckpt is not None:
            self.ckpt.save_weights(TEACHER, snapshot(self.bundle.model))
        if self.keep_teacher:  # for the teacher/student active-learning strategy
            self.teacher = self.bundle.clone()
            self.teacher.model.eval()
        teacher = teacher_logits(self.bundle.model, target, self.collate, self.device,
                                 self.tc.eval_batch_size, self._autocast)
        if self.extra_teachers:
            teacher = self._average_teachers(teacher, sentences)
        source = self._encode(self.data.source) if self.lc.lambda_src > 0 else None
        batches = DistillationBatches(target, teacher, source, self.tc.batch_size,
                                      self.tc.seed + 1, self.collate, self.device)
        self.best_reports = {}  # the best distillation epoch is kept, not the teacher
        self._loop("kd", batches,
                   lambda batch: distillation_step_loss(self.bundle.model, batch, self.lc),
                   self.tc.kd_epochs, resume, self._used_rows(target, source))

    def _average_teachers(self, own: list[torch.Tensor],
                          sentences: list[Sentence]) -> list[torch.Tensor]:
        """Per sentence, ``[n_first_i, C]`` logits whose distribution at ``kd_temperature``
        is the mean of the stage-1 model's (``own``) and every extra teacher's."""
        per_teacher = [own]
        for k, bundle in enumerate(self.extra_teachers):
            encoded, _ = encode_sentences(bundle.tokenizer, sentences, None,
                                          self.config.model.max_length)
            model = bundle.model
            if next(model.parameters()).device != self.device:
                model = bundle.clone().model.to(self.device)
            logits = teacher_logits(model, encoded, Collator(bundle.tokenizer.pad_token_id),
                                    self.device, self.tc.eval_batch_size, self._autocast)
            if [t.shape for t in logits] != [t.shape for t in own]:
                raise ConfigError(f"extra teacher {k + 1} reads a different number of words "
                                  "in some target sentences (another tokenizer truncates "
                                  "differently); give teachers with the model's tokenizer")
            per_teacher.append(logits)
        temperature = self.lc.kd_temperature
        return [average_teachers(list(rows), temperature=temperature)
                for rows in zip(*per_teacher)]

    # -- the shared loop ----------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.tc.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if self.device.type == "cpu" and self.tc.cpu_bf16 and cpu_has_native_bf16():
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _used_rows(self, *groups: list[Encoded] | None) -> list[int] | None:
        """The word-embedding rows a stage trains (``training.embedding_rows``): the pieces
        of its sequences and the special tokens, or None for all rows."""
        if self.tc.embedding_rows == "all":
            return None
        return used_piece_ids((e.input_ids for group in groups if group for e in group),
                              always=self.bundle.tokenizer.all_special_ids)

    def _loop(self, stage: str, batches, loss_fn, epochs: int,
              resume: Resumed | None = None, used_rows: list[int] | None = None) -> None:
        """Train ``epochs`` epochs of ``batches`` (with only the word-embedding rows
        ``used_rows`` trainable meanwhile, when given; see concner.method.embedding_rows)."""
        rows = (train_used_rows(self.bundle.model, used_rows) if used_rows is not None
                else contextlib.nullcontext())
        with rows:
            self._epochs(stage, batches, loss_fn, epochs, resume)

    def _epochs(self, stage: str, batches, loss_fn, epochs: int,
                resume: Resumed | None) -> None:
        model = self.bundle.model
        optimizer = make_optimizer(model, self.tc, self.device)
        total_steps = epochs * len(batches)
        scheduler = linear_schedule(optimizer, total_steps, self.tc.warmup_ratio)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        best = {"score": float("-inf"), "file": None, "state": None}
        done, step = 0, 0
        if resume is not None:
            at = self._resume_loop(resume, optimizer, scheduler, batches)
            done, step, best = at["epoch"], at["step"], at["best"]
        for epoch in range(done + 1, epochs + 1):
            if self._plateaued(stage):
                log.info("%s: dev score not better for %d epochs: stopping after epoch %d of "
                         "%d (training.early_stop_patience)", stage,
                         self.tc.early_stop_patience, epoch - 1, epochs)
                break
            model.train()
            batches.set_epoch(epoch)
            t_epoch = time.perf_counter()
            timing = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
            sums: dict[str, float] = {}
            n_steps = 0
            iterator = iter(batches)
            while True:
                t0 = time.perf_counter()
                batch = next(iterator, None)
                if batch is None:
                    break
                t1 = time.perf_counter()
                with self._autocast():
                    loss, parts = loss_fn(batch)
                t2 = time.perf_counter()
                loss.backward()
                t3 = time.perf_counter()
                if self.tc.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, self.tc.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                t4 = time.perf_counter()
                for key, a, b in (("data", t0, t1), ("forward", t1, t2), ("backward", t2, t3),
                                  ("optimizer", t3, t4)):
                    timing[key] += b - a
                step += 1
                n_steps += 1
                values = {k: float(v.detach()) for k, v in parts.items()}
                values["loss"] = float(loss.detach())
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                self._emit(ProgressEvent(stage, epoch, step, total_steps, values["loss"],
                                         {k: v for k, v in values.items() if k != "loss"}))
            record = {"stage": stage, "epoch": epoch, "steps": n_steps,
                      "loss": sums.get("loss", 0.0) / max(1, n_steps),
                      "losses": {k: v / max(1, n_steps) for k, v in sums.items() if k != "loss"},
                      "timing": {k: round(v, 3) for k, v in timing.items()}}
            if stage == "stage1" and self.entity_alignment is not None:
                record["tcl_entity_alignment"] = dict(self.entity_alignment)
            if self.dev and (self.tc.eval_every_epoch or epoch == epochs):
                reports, score = self._evaluate(self._selection_langs())
                record["dev"] = {lang: r["f1"] for lang, r in reports.items()}
                record["score"] = score
                self._emit(ProgressEvent("eval", epoch, step, total_steps, None, {},
                                         {**record["dev"], "score": score}, of_stage=stage))
                if score > best["score"]:
                    best = {"score": score, "state": snapshot(model),
                            "file": f"best-{stage}-{epoch}.pt"}
                    self.best_reports = reports
                    if self.ckpt is not None:  # before the checkpoint that names it
                        self.ckpt.save_weights(best["file"], best["state"])
            record["seconds"] = round(time.perf_counter() - t_epoch, 3)
            self.history.append(record)
            if self.ckpt is not None:
                self._save_checkpoint(stage, epoch, epochs, step, optimizer, scheduler, best,
                                      batches)
        if best["state"] is not None:
            restore(model, best["state"])
            kept = chosen_epochs(self.history)[stage]
            log.info("%s: keeping epoch %d (dev score %.4f)", stage, kept["epoch"], kept["score"])

    def _plateaued(self, stage: str) -> bool:
        """Whether ``stage``'s last ``training.early_stop_patience`` epochs scored no better
        than its best before them (from the history: a resumed run decides the same)."""
        patience = self.tc.early_stop_patience
        scores = [r["score"] for r in self.history if r["stage"] == stage and "score" in r]
        if patience == 0 or len(scores) <= patience:
            return False
        return max(scores[-patience:]) <= max(scores[:-patience])

    def _selection_langs(self) -> list[str]:
        """Dev languages evaluated after each epoch: ``training.select_langs`` (the others
        are evaluated once, on the returned model), or all dev languages when empty."""
        chosen = list(self.tc.select_langs) or list(self.dev)
        unknown = [lang for lang in chosen if lang not in self.dev]
        if unknown:
            raise ConfigError(f"training.select_langs names {unknown} but the dev sets are "
                              f"{sorted(self.dev)}; fix select_langs or add those dev files")
        return chosen

    def _evaluate(self, langs: list[str], score: bool = True) -> tuple[dict[str, dict], float]:
        """Dev reports for ``langs`` and their mean F1 (the selection score)."""
        predictor = Predictor(self.bundle, batch_size=self.tc.eval_batch_size,
                              device=str(self.device), bf16=self.tc.bf16)
        reports = {}
        for lang in langs:
            sentences = self.dev[lang]
            predictions = predictor.predict(sentences)
            reports[lang] = evaluate(sentences, [p.tags for p in predictions])
        mean = sum(r["f1"] for r in reports.values()) / len(reports) if score and reports else 0.0
        return reports, mean

    def _emit(self, event: ProgressEvent) -> None:
        if self.callback is not None:
            self.callback(event)
