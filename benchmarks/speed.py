"""Is ConCNER fast on 2 CPU cores? Side by side in one run, reported as ratios.

    python -m benchmarks.speed                      # every section
    python -m benchmarks.speed --section train      # train | predict | retrain | rank
    python -m benchmarks.speed --smoke              # tiny encoder and data, about a minute

- ``train``: training throughput (sentences per second) and peak RSS of a plain Hugging
  Face ``Trainer`` set up like ``run_ner.py`` and of ConCNER's loop, then ConCNER with each
  speed measure added in turn (frozen word embeddings, trimmed vocabulary, threads), and
  CE-only vs the full stage-1 loss on the same source + translation pairs. Each variant
  runs in its own process (clean peak RSS), variants interleaved over ``--rounds``; the
  median is reported. Where a step's time goes (data/forward/backward/optimizer) comes
  from the training loop's own timers.
- ``predict``: ``pipeline("token-classification", aggregation_strategy="first")`` and
  ConCNER's ``Predictor`` as it was (``fp32_before``) and in each ``model.inference_precision``
  (fp32, bf16, int8) on 2,000 es dev sentences, same weights, interleaved rounds in one
  process; per predictor the speedup, the share of sentences whose entities are identical
  to the pipeline's (also on the sentences where the pipeline groups sub-words into the
  true words: elsewhere it decides a word from another token) and to ConCNER fp32's.
  ``--smoke`` without ``--model`` uses an untrained tiny model.
- ``retrain``: the worker's own retrain job per variant and seed, each in its own process
  (see benchmarks/speed_retrain.py): seconds, where the training time goes by stage, dev
  F1, peak RSS; ``--incremental`` adds the incremental update after 50 new labels. (It
  replaces the ``cycle`` section, whose last result stays in speed.json.)
- ``rank``: the pool prediction of ``--pool-size`` sentences as it was (the whole pool at
  once) and streamed, and the re-rank after 1,000 new sentences, each in its own process
  (see benchmarks/speed_rank.py): seconds, CPU seconds, peak RSS, ask-order agreement.

Results: ``benchmarks/results/speed.json`` (+ ``speed.md``), one entry per section, each
with the machine, commit and command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import bench_data as bd
from benchmarks.common import (
    RESULTS,
    WORK,
    markdown_table,
    peak_rss_mb,
    provenance,
    require_encoder,
)
from benchmarks.speed_rank import rank_markdown, section_rank
from benchmarks.speed_rank import run_one as run_one_rank
from benchmarks.speed_retrain import VARIANTS as RETRAIN_VARIANTS
from benchmarks.speed_retrain import retrain_markdown, run_one, section_retrain, split_by_machine

#: name -> (trainer, data, config overrides). "data": "src" = source sentences only,
#: "pairs" = the same sentences + their es translations.
TRAIN_VARIANTS: dict[str, dict] = {
    "hf_trainer": {"trainer": "hf", "data": "src", "encoder": "full"},
    "concner_ce": {"data": "src", "encoder": "full", "model": {"freeze_embeddings": False}},
    "concner_ce_frozen": {"data": "src", "encoder": "full", "model": {"freeze_embeddings": True}},
    "concner_ce_frozen_trim": {"data": "src", "encoder": "trim",
                               "model": {"freeze_embeddings": True}},
    "concner_ce_trim": {"data": "src", "encoder": "trim", "model": {"freeze_embeddings": False}},
    "concner_ce_frozen_trim_1thread": {"data": "src", "encoder": "trim", "threads": 1,
                                       "model": {"freeze_embeddings": True}},
    "pairs_ce": {"data": "pairs", "encoder": "trim", "model": {"freeze_embeddings": True},
                 "loss": {"lambda_lcl": 0.0, "lambda_tcl": 0.0}},
    "pairs_full": {"data": "pairs", "encoder": "trim", "model": {"freeze_embeddings": True},
                   "loss": {"lambda_lcl": 0.5, "lambda_tcl": 0.5}},
}


class Setup:
    """Data and encoders shared by the sections (cached under benchmarks/work/)."""

    def __init__(self, smoke: bool, n_train: int):
        self.smoke = smoke
        self.work = WORK / ("speed-smoke" if smoke else "speed")
        self.work.mkdir(parents=True, exist_ok=True)
        if smoke:
            from benchmarks.smoke import tiny_encoder

            self.full = tiny_encoder(self.work, ["en", "es"])
            self.source = bd.source_sample(n_train, pool=400)
        else:
            self.full = require_encoder()
            self.source = bd.source_sample(1000)[:n_train]
        self._trim = None

    def encoder(self, kind: str) -> Path:
        if kind == "full" or self.smoke:
            return self.full
        if self._trim is None:
            source = bd.source_sample(1000)
            tr, _ = bd.translations(source, "es", work=WORK)
            corpora = [source, tr, bd.unlabelled("es", 2000), bd.dev("es", "report", 2000)]
            # the quality benchmark's trimmed encoder when it exists (same text covered)
            self._trim = bd.trimmed_encoder(self.full, corpora, work=WORK)
        return self._trim


# --------------------------------------------------------------------------------------
# one measurement, in its own process
# --------------------------------------------------------------------------------------
def measure_train(variant: str, encoder: str, n_train: int, smoke: bool, epochs: int) -> dict:
    import torch

    spec = TRAIN_VARIANTS[variant]
    threads = spec.get("threads", 1 if smoke else 2)
    torch.set_num_threads(threads)
    source = bd.source_sample(n_train, pool=400 if smoke else None) if smoke \
        else bd.source_sample(1000)[:n_train]
    from concner.labels import LabelSchema

    schema = LabelSchema(["PER", "ORG", "LOC"])
    if spec.get("trainer") == "hf":
        from benchmarks.hf_baseline import train_with_trainer

        out = train_with_trainer(encoder, source, schema, WORK / "speed" / "hf-out",
                                 epochs=epochs, batch_size=16, learning_rate=1e-4)
        seconds, sentences = out["seconds"], len(source) * epochs
        timing = None
    else:
        from concner.config import config_from_dict
        from concner.method.training import TrainData, train

        cfg = {"model": {"encoder": encoder, **spec.get("model", {})},
               "loss": {"use_translation": spec["data"] == "pairs", "kd": False, "lambda_lcl": 0.0,
                        "lambda_tcl": 0.0, **spec.get("loss", {})},
               "training": {"epochs": epochs, "batch_size": 16, "num_threads": threads,
                            "eval_every_epoch": False}}
        translations = None
        if spec["data"] == "pairs":
            full_source = bd.source_sample(n_train, pool=400) if smoke else bd.source_sample(1000)
            all_tr, _ = bd.translations(full_source, "es",
                                        work=WORK / "speed-smoke" if smoke else WORK)
            ids = {s.id for s in source}
            translations = [t for t in all_tr if t.meta.get("source_id") in ids]
        result = train(config_from_dict(cfg, env={}), TrainData(source=source,
                                                                translations=translations))
        seconds = sum(r["seconds"] for r in result.history)
        sentences = (len(source) + len(translations or [])) * epochs
        timing = {k: round(sum(r["timing"][k] for r in result.history), 2)
                  for k in result.history[0]["timing"]}
    return {"variant": variant, "threads": threads, "sentences": sentences,
            "seconds": round(seconds, 2), "sentences_per_s": round(sentences / seconds, 2),
            "peak_rss_mb": round(peak_rss_mb(), 0), "timing": timing, "encoder": encoder}


def run_in_subprocess(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.speed", "--one", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1],
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------
def section_train(setup: Setup, args) -> dict:
    variants = args.variants or list(TRAIN_VARIANTS)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        order = variants if round_ % 2 == 0 else list(reversed(variants))
        for v in order:
            enc = str(setup.encoder(TRAIN_VARIANTS[v]["encoder"]))
            r = run_in_subprocess(["train", v, enc, str(args.n_train), str(int(args.smoke)),
                                   str(args.epochs)])
            runs[v].append(r)
            print(f"[speed/train] {v}: {r['sentences_per_s']} sent/s, {r['peak_rss_mb']} MB",
                  flush=True)
    summary = {}
    for v, rs in runs.items():
        sps = statistics.median(r["sentences_per_s"] for r in rs)
        summary[v] = {"sentences_per_s": sps, "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                      "runs": rs}

    def ratio(a, b):
        if a in summary and b in summary:
            return round(summary[a]["sentences_per_s"] / summary[b]["sentences_per_s"], 2)
        return None

    ratios = {
        "concner_ce_vs_hf_trainer": ratio("concner_ce", "hf_trainer"),
        "concner_ce_frozen_trim_vs_hf_trainer": ratio("concner_ce_frozen_trim", "hf_trainer"),
        "full_stage1_cost_vs_ce (time per sentence)": ratio("pairs_ce", "pairs_full"),
        "frozen_vs_trainable_embeddings": ratio("concner_ce_frozen", "concner_ce"),
        "trim_vs_full_vocab (trainable)": ratio("concner_ce_trim", "concner_ce"),
        "2_threads_vs_1": ratio("concner_ce_frozen_trim", "concner_ce_frozen_trim_1thread"),
    }
    return {"variants": summary, "ratios": ratios,
            "targets": {"full_stage1_cost_vs_ce <= 1.35": ratios["full_stage1_cost_vs_ce (time per sentence)"],
                        "best concner_ce vs hf_trainer >= 2.0": ratios["concner_ce_frozen_trim_vs_hf_trainer"]},
            "n_train": args.n_train, "epochs": args.epochs}


#: ConCNER predictor settings measured against the pipeline (all batch 64, argmax decoding,
#: as the pipeline decodes). "fp32_before" is the predictor as it was up to commit 0004e61
#: (2.22x): torch's default linear layers, batches of 64 windows without a token budget.
PREDICT_VARIANTS: dict[str, dict] = {
    "fp32_before": {"precision": "fp32", "prepack": False, "max_tokens": 0},
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "int8": {"precision": "int8"},
}


def section_predict(setup: Setup, args) -> dict:
    """Pipeline and every :data:`PREDICT_VARIANTS` entry on the same sentences, in
    interleaved rounds (order reversed every other round); medians and ratios, and for each
    variant the share of sentences whose entities are identical to the pipeline's (all, and
    where the pipeline's word grouping is the true one: :func:`_grouping_check`) and to
    ConCNER fp32's, and the share of words with the same tag as fp32."""
    import torch

    from benchmarks.hf_baseline import pipeline_entities
    from concner.method.inference import Predictor
    from concner.method.model import NerBundle

    threads = args.threads or (1 if args.smoke else 2)
    torch.set_num_threads(threads)
    model_dir = Path(args.model) if args.model else (_smoke_model(setup) if args.smoke else None)
    if model_dir is None:
        raise SystemExit("--model DIR: a trained ConCNER model folder is needed for 'predict'")
    bundle = NerBundle.load(model_dir)
    sentences = bd.dev("es", "report", 200 if args.smoke else 2000)
    hf_model = bundle_to_hf(bundle)
    predictors = {v: Predictor(bundle, batch_size=64, device="cpu", decoding="argmax", **kw)
                  for v, kw in PREDICT_VARIANTS.items()}
    for predictor in predictors.values():  # warm-up: converted weights, oneDNN kernels
        predictor.predict(sentences[:64])
    pipeline_entities(hf_model, bundle.tokenizer, sentences[:64], batch_size=64)
    seconds: dict[str, list[float]] = {v: [] for v in ["pipeline", *predictors]}
    entities: dict[str, list[set]] = {}
    tags: dict[str, list[list[str]]] = {}
    for round_ in range(args.rounds):
        order = list(seconds) if round_ % 2 == 0 else list(reversed(seconds))
        for v in order:
            if v == "pipeline":
                found, sec = pipeline_entities(hf_model, bundle.tokenizer, sentences, batch_size=64)
                entities[v] = [{_strip(s.text, e) for e in ents} for s, ents in zip(sentences, found)]
            else:
                t0 = time.perf_counter()
                preds = predictors[v].predict(sentences)
                sec = time.perf_counter() - t0
                entities[v] = [{(sp.start, sp.end, sp.label) for sp in p.spans} for p in preds]
                tags[v] = [p.tags for p in preds]
            seconds[v].append(round(sec, 3))
            print(f"[speed/predict] round {round_ + 1} {v}: {sec:.2f} s", flush=True)

    def identical(a: str, b: str) -> float:
        return round(sum(x == y for x, y in zip(entities[a], entities[b])) / len(sentences), 4)

    def same_tags(a: str, b: str) -> float:
        pairs = [(x, y) for xs, ys in zip(tags[a], tags[b]) for x, y in zip(xs, ys)]
        return round(sum(x == y for x, y in pairs) / max(1, len(pairs)), 5)

    same_ids, regrouped = _grouping_check(bundle.tokenizer, sentences)
    kept = [i for i, bad in enumerate(regrouped) if not bad]

    def identical_where_grouping_agrees(v: str) -> float:
        same = sum(entities[v][i] == entities["pipeline"][i] for i in kept)
        return round(same / max(1, len(kept)), 4)

    pipe = statistics.median(seconds["pipeline"])
    variants = {}
    for v in predictors:
        med = statistics.median(seconds[v])
        variants[v] = {"seconds": round(med, 2), "runs": seconds[v],
                       "speedup_vs_pipeline": round(pipe / med, 2),
                       "identical_entities_vs_pipeline": identical(v, "pipeline"),
                       "identical_vs_pipeline_where_grouping_agrees":
                           identical_where_grouping_agrees(v),
                       "identical_entities_vs_fp32": identical(v, "fp32"),
                       "word_tags_vs_fp32": same_tags(v, "fp32")}
    differ = [i for i, (a, b) in enumerate(zip(entities["fp32"], entities["pipeline"])) if a != b]
    ratios = {f"{v}_vs_pipeline": variants[v]["speedup_vs_pipeline"] for v in variants}
    ratios.update({f"{v}_vs_fp32_before": round(variants["fp32_before"]["seconds"]
                                                  / variants[v]["seconds"], 2)
                   for v in variants if v != "fp32_before"})
    fp32 = variants["fp32"]
    return {"sentences": len(sentences), "threads": threads, "rounds": args.rounds,
            "pipeline_seconds": round(pipe, 2), "pipeline_runs": seconds["pipeline"],
            "variants": variants, "ratios": ratios,
            "pipeline_disagreements": {
                "sentences_with_identical_subword_ids": same_ids,
                "sentences_where_pipeline_word_grouping_differs": sum(regrouped),
                "fp32_disagreements": len(differ),
                "fp32_disagreements_where_grouping_differs": sum(regrouped[i] for i in differ)},
            "model": str(model_dir),
            "targets": {"fp32 speedup >= 3": fp32["speedup_vs_pipeline"],
                        "fp32 identical >= 0.99": fp32["identical_entities_vs_pipeline"]}}


def _smoke_model(setup: Setup) -> Path:
    """``--smoke`` without ``--model``: an untrained model over the tiny encoder."""
    import torch

    from concner.config import ModelConfig
    from concner.labels import LabelSchema
    from concner.method.model import build_bundle

    folder = setup.work / "tiny-model"
    if not (folder / "model.safetensors").exists():
        torch.manual_seed(0)
        build_bundle(str(setup.full), LabelSchema(["PER", "ORG", "LOC"]),
                     ModelConfig(encoder=str(setup.full))).save(folder)
    return folder


def _pipeline_word_starts(tokenizer, text: str, ids: list[int], offsets) -> list[int]:
    """Token positions the pipeline's ``aggregation_strategy="first"`` takes as word
    starts on ``text`` (transformers' ``gather_pre_entities``): with a tokenizer that has
    no continuing-sub-word prefix (SentencePiece), its fallback heuristic starts a word at
    every token whose offset begins after a space, which a lone ``▁`` piece breaks."""
    model = getattr(getattr(tokenizer, "_tokenizer", None), "model", None)
    prefix = getattr(model, "continuing_subword_prefix", None)
    starts = []
    for idx, (token_id, (s, e)) in enumerate(zip(ids, offsets)):
        if token_id in tokenizer.all_special_ids:
            continue
        if prefix:
            subword = len(tokenizer.convert_ids_to_tokens(token_id)) != len(text[s:e])
        else:
            subword = s > 0 and " " not in text[s - 1:s + 1]
        if not starts or not subword or token_id == tokenizer.unk_token_id:
            starts.append(idx)
    return starts


def _grouping_check(tokenizer, sentences) -> tuple[int, list[bool]]:
    """``(sentences whose sub-word ids are the same from the text as from the words, per
    sentence: does the pipeline's word grouping differ from the sentence's words)``.

    Same ids and weights give the same logits; then the pipeline decides each word by the
    first token of ITS word grouping, ConCNER by the word's first sub-word (where it was
    trained), so where the groupings differ the two can disagree without any difference in
    the model's output."""
    same_ids, differs = 0, []
    for sentence in sentences:
        enc = tokenizer(sentence.text, return_offsets_mapping=True)
        words = tokenizer(list(sentence.tokens), is_split_into_words=True)
        same_ids += enc["input_ids"] == words["input_ids"]
        seen, true_starts = set(), []
        for idx, w in enumerate(words.word_ids()):
            if w is not None and w not in seen:
                seen.add(w)
                true_starts.append(idx)
        differs.append(_pipeline_word_starts(tokenizer, sentence.text, enc["input_ids"],
                                             enc["offset_mapping"]) != true_starts)
    return same_ids, differs


def _strip(text: str, ent: tuple[int, int, str]) -> tuple[int, int, str]:
    """The pipeline's offsets can include the space a sub-word carries; trim it."""
    s, e, label = ent
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e, label


def bundle_to_hf(bundle):
    """The same weights as a transformers ``*ForTokenClassification`` model."""
    from transformers import AutoModelForTokenClassification

    cfg = bundle.model.encoder.config
    cfg.num_labels = len(bundle.schema)
    cfg.id2label = dict(enumerate(bundle.schema.tags))
    cfg.label2id = bundle.schema.tag_to_id
    model = AutoModelForTokenClassification.from_config(cfg)
    base = getattr(model, model.base_model_prefix)
    base.load_state_dict(bundle.model.encoder.state_dict(), strict=False)
    model.classifier.load_state_dict(bundle.model.classifier.state_dict())
    return model.eval()


SECTIONS = {"train": section_train, "predict": section_predict, "retrain": section_retrain,
            "rank": section_rank}


def write_results(results: dict, smoke: bool) -> Path:
    path = RESULTS / ("speed_smoke.json" if smoke else "speed.json")
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old, indent=2))
    if not smoke:
        write_markdown(old)
    return path


def write_markdown(res: dict) -> None:
    md = ["# Speed and memory on 2 CPU cores", ""]
    if "train" in res:
        t = res["train"]
        p = t["provenance"]
        md += [f"## Training throughput ({t['n_train']} sentences x {t['epochs']} epoch)", "",
               f"`{p['command']}` on {p['machine']}, commit {p['commit']}, {p['date']}.", ""]
        rows = []
        for v, s in t["variants"].items():
            timing = s["runs"][0].get("timing") or {}
            split = ", ".join(f"{k} {val}" for k, val in timing.items())
            rows.append([v, s["sentences_per_s"], s["peak_rss_mb"], split or "–"])
        md += [markdown_table(["variant", "sentences/s", "peak RSS MB", "time split (s)"], rows), ""]
        md += [markdown_table(["ratio", "value"], [[k, v] for k, v in t["ratios"].items()]), ""]
    if "predict" in res:
        md += _predict_markdown(res["predict"])
    if "retrain" in res:
        md += retrain_markdown(res["retrain"])
    for machine, section in res.get("retrain_elsewhere", {}).items():
        md += retrain_markdown(section, on=machine)
    if "rank" in res:
        md += rank_markdown(res["rank"])
    if "cycle" in res:  # measured before issue 20 (a trimmed benchmark encoder)
        md += _measures_markdown("cycle (before issue 20: the section is now retrain)",
                                 res["cycle"])
    (RESULTS / "speed.md").write_text("\n".join(md))


def _measures_markdown(name: str, r: dict) -> list[str]:
    """A section as a plain measure/value table, with the command that made it."""
    p = r["provenance"]
    where = f"`{p['command']}` on {p['machine']}, commit {p['commit']}, {p['date']}."
    return [f"## {name}", "", where, "",
            markdown_table(["measure", "value"],
                           [[k, v] for k, v in r.items() if k != "provenance"]), ""]


def _predict_markdown(r: dict) -> list[str]:
    if "variants" not in r:  # an entry written before the precisions were measured
        return _measures_markdown("predict", r)
    p = r["provenance"]
    rows = [["pipeline", r["pipeline_seconds"], 1.0, "–", "–", "–", "–"]]
    rows += [[v, s["seconds"], s["speedup_vs_pipeline"], s["identical_entities_vs_pipeline"],
              s.get("identical_vs_pipeline_where_grouping_agrees", "–"),
              s["identical_entities_vs_fp32"],
              s["word_tags_vs_fp32"]]
             for v, s in r["variants"].items()]
    title = (f"## Prediction ({r['sentences']} es dev sentences, {r['threads']} threads, "
             f"median of {r['rounds']} interleaved rounds)")
    return [title, "",
            f"`{p['command']}` on {p['machine']}, commit {p['commit']}, {p['date']}.", "",
            markdown_table(["predictor", "seconds", "speedup vs pipeline",
                            "identical entities vs pipeline",
                            "same, where the pipeline groups sub-words into the true words",
                            "identical entities vs fp32", "word tags vs fp32"], rows), "",
            markdown_table(["pipeline disagreements (fp32)", "value"],
                           [[k, v] for k, v in r["pipeline_disagreements"].items()]), "",
            markdown_table(["ratio", "value"], [[k, v] for k, v in r["ratios"].items()]), ""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--section", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--variants", nargs="+", choices=list(TRAIN_VARIANTS))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--n-train", type=int, default=480)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--model", help="trained model folder for the predict section (--smoke: an "
                   "untrained tiny model when not given)")
    p.add_argument("--threads", type=int, default=0,
                   help="predict: torch threads (default 2, --smoke 1)")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--retrain-variants", nargs="+", choices=list(RETRAIN_VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[13],
                   help="retrain: training seeds (13 is the default config's)")
    p.add_argument("--incremental", action="store_true",
                   help="retrain: also time the incremental update after 50 labels (first seed)")
    p.add_argument("--fresh", action="store_true",
                   help="retrain: redo every run instead of keeping the saved ones")
    p.add_argument("--pool-size", type=int, default=100_000,
                   help="rank: unlabelled target sentences in the pool (--smoke: 400)")
    p.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--one-rank", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--one-retrain", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_retrain:
        print(json.dumps(run_one(args.one_retrain,
                                 lambda smoke: Setup(smoke, 32 if smoke else args.n_train))))
        return 0
    if args.one_rank:
        print(json.dumps(run_one_rank(args.one_rank)))
        return 0
    if args.one:
        _kind, variant, encoder, n, smoke, epochs = args.one
        print(json.dumps(measure_train(variant, encoder, int(n), bool(int(smoke)), int(epochs))))
        return 0
    if args.smoke:
        args.rounds, args.n_train = 1, 32
        args.variants = args.variants or ["hf_trainer", "concner_ce", "pairs_ce", "pairs_full"]
    setup = Setup(args.smoke, args.n_train)
    results = {}
    for name in args.section:
        if name == "predict" and not (args.model or args.smoke):
            print("[speed] skipping predict: pass --model DIR", flush=True)
            continue
        if name == "retrain":  # resumable: saved after every run, earlier runs kept
            path = RESULTS / ("speed_smoke.json" if args.smoke else "speed.json")
            earlier, elsewhere = split_by_machine(
                json.loads(path.read_text()) if path.exists() else {}, provenance()["machine"])
            results[name] = {**section_retrain(
                setup, args, earlier,
                save=lambda r, kept=elsewhere: write_results(
                    {"retrain": {**r, "provenance": provenance()}, "retrain_elsewhere": kept},
                    args.smoke)),
                "provenance": provenance()}
            results["retrain_elsewhere"] = elsewhere
        elif name == "rank":  # saved after every path: a timed-out run keeps what finished
            results[name] = {**section_rank(
                setup, args, save=lambda r: write_results(
                    {"rank": {**r, "provenance": provenance()}}, args.smoke)),
                "provenance": provenance()}
        else:
            results[name] = {**SECTIONS[name](setup, args), "provenance": provenance()}
        print(f"[speed] {name}: {json.dumps({k: v for k, v in results[name].items() if k in ('ratios', 'targets')})}",
              flush=True)
        write_results({name: results[name], **({"retrain_elsewhere": results["retrain_elsewhere"]}
                                               if name == "retrain" else {})}, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
