"""How many labels does each active-learning strategy save? A simulated-annotator benchmark.

The annotator answers with PAN-X gold labels. Two loops, each per strategy and seed:

- **source side**: start from ``--initial`` (100) labelled English sentences; each round the
  strategy picks ``--step`` (150) sentences from an English pool (``--pool-size`` 5,000,
  gold hidden), the annotator labels them, the model is updated (warm start from the last
  round, stage 1 only, no KD) on everything labelled so far; up to ``--budget`` (1,000).
- **target side**: the same start, but the pool is Spanish (``--target-pool-lang``) and
  the picked sentences are target-language corrections added to training.

After every round the model is evaluated on the first ``--dev-size`` (500) dev sentences of
each target language (es, de, sw, hi). One JSONL row per side, strategy, seed and round
goes to ``benchmarks/results/active_learning.jsonl``; a re-run skips finished rows and
continues a run from its last checkpoint under ``benchmarks/work/active_learning`` (or,
when that is gone, replays the recorded selections). ``--report`` only rewrites the
summary (``active_learning.json``/``.md``/``.png``): F1-versus-labels curves, the area
under each, and the labels each strategy needs to reach random's F1 at the budget, read on
the curves averaged over seeds and per seed against random's curve of the same seed; the
Markdown starts with the setting, the commands that reproduce it and the rows' provenance.

Teacher/student: the teacher is the current model; the student is the teacher distilled
(stage 2 only) on ``--kd-size`` unlabelled target sentences; the pool is ranked by their
Jensen-Shannon disagreement. Random ranks without running the model.

``--smoke`` runs the whole pipeline in about a minute on synthetic sentences with a tiny
random encoder (see ``tests/tiny.py``), writing to ``--out-dir``.

Run (hours on 2 CPU cores; spread over sessions):
    nohup nice -n 19 python benchmarks/active_learning.py > benchmarks/work/al.log 2>&1 &
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.active_learning_report import write_outputs
from benchmarks.common import PANX, RESULTS, WORK, ResultLog, require_encoder
from concner.active import PoolOutputs, get_strategy, score_pool
from concner.config import Config, config_from_dict
from concner.sentence import Sentence

KEY = ("setting", "side", "strategy", "seed", "round")


@dataclass
class Setup:
    """Everything a run needs. ``pools[side]`` holds gold-tagged sentences: the tags are the
    simulated annotator's answers and are never shown to a strategy."""

    setting: str
    config: Config  # per-round updates (warm start)
    initial_config: Config  # the first model, from the encoder
    initial: list[Sentence]
    pools: dict[str, list[Sentence]]
    kd_text: dict[str, list[Sentence]]  # unlabelled target text for the teacher/student student
    dev: dict[str, list[Sentence]]
    step: int
    budget: int
    mc_passes: int
    work: Path
    schedule: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.initial)
        self.schedule = [n]
        while n < self.budget:
            n = min(n + self.step, self.budget)
            self.schedule.append(n)


def unlabelled(sentences: list[Sentence]) -> list[Sentence]:
    return [s.with_tags(None) for s in sentences]


# ------------------------------------------------------------------------------------------
# model steps (concner.method.training / concner.method.inference / concner.method.evaluation)

def train_update(setup: Setup, labelled: list[Sentence], init, seed: int, *, initial: bool = False):
    from concner.method.training import TrainData, train

    config = setup.initial_config if initial else setup.config
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, seed=seed))
    data = TrainData(source=list(labelled), translations=None, unlabelled_target=[], dev={})
    return train(config, data, init=init).bundle


def distil_student(setup: Setup, teacher, labelled: list[Sentence], side: str, seed: int):
    """The teacher distilled on unlabelled target text (stage 2 only)."""
    from concner.method.training import TrainData, train

    c = setup.config
    config = dataclasses.replace(
        c, loss=dataclasses.replace(c.loss, kd=True),
        training=dataclasses.replace(c.training, seed=seed, epochs=0, kd_epochs=1))
    data = TrainData(source=list(labelled), translations=None,
                     unlabelled_target=unlabelled(setup.kd_text[side]), dev={})
    return train(config, data, init=teacher.clone()).bundle


def evaluate_dev(setup: Setup, bundle) -> dict[str, float]:
    from concner.method.evaluation import evaluate
    from concner.method.inference import Predictor

    # the decoding is the setting's, whatever the loaded model folder says (a folder saved
    # before decoding was recorded would get today's default)
    predictor = Predictor(bundle, batch_size=64, device="cpu", decoding=setup.config.model.decoding)
    scores = {}
    for lang, gold in setup.dev.items():
        predicted = predictor.predict(unlabelled(gold))
        scores[lang] = float(evaluate(gold, [p.tags for p in predicted])["f1"])
    return scores


def select_batch(setup: Setup, name: str, bundle, labelled: list[Sentence], side: str,
                 k: int, seed: int, round_: int) -> list[str]:
    """Ids of the next ``k`` pool sentences by strategy ``name`` (never one labelled already)."""
    from concner.method.inference import Predictor

    done = {s.id for s in labelled}
    pool = [s for s in setup.pools[side] if s.id not in done]
    strategy = get_strategy(name, setup.config.active)
    round_seed = seed * 1000 + round_
    if name == "random":  # random ranks without looking at the model
        outputs = PoolOutputs([s.id for s in pool], [np.ones((len(s), 1)) for s in pool])
    else:
        predictor = Predictor(bundle, batch_size=64, device="cpu")
        teacher = None
        if strategy.needs_teacher:
            student = distil_student(setup, bundle, labelled, side, seed)
            teacher, predictor = predictor, Predictor(student, batch_size=64, device="cpu")
        outputs = score_pool(predictor, unlabelled(pool), strategy, mc_passes=setup.mc_passes,
                             teacher=teacher, seed=round_seed)
    return [s.sentence_id for s in strategy.select(outputs, k, seed=round_seed)]


# ------------------------------------------------------------------------------------------
# one run = one side, strategy and seed, resumable per round

def initial_model(setup: Setup, seed: int):
    """The first model (shared by every strategy and side for a seed), cached on disk."""
    from concner.method.model import NerBundle

    folder = setup.work / f"initial-seed{seed}"
    if (folder / "model.safetensors").exists():
        return NerBundle.load(folder)
    bundle = train_update(setup, setup.initial, None, seed, initial=True)
    bundle.save(folder)
    return bundle


def run(setup: Setup, log: ResultLog, side: str, name: str, seed: int) -> None:
    from concner.method.model import NerBundle

    gold = {s.id: s for s in setup.pools[side]}
    rows = sorted((r for r in log.rows if r.get("setting") == setup.setting and r["side"] == side
                   and r["strategy"] == name and r["seed"] == seed), key=lambda r: r["round"])
    if len(rows) >= len(setup.schedule):
        return
    folder = setup.work / f"{side}-{name}-seed{seed}"
    state_file = folder / "state.json"
    labelled = list(setup.initial) + [gold[i] for r in rows for i in r["selected"]]
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if rows and state.get("round") == rows[-1]["round"]:
        bundle = NerBundle.load(folder / "model")
    else:  # replay the recorded rounds (training only) from the shared first model
        bundle = initial_model(setup, seed)
        for r in rows[1:]:
            bundle = train_update(setup, list(setup.initial) + [gold[i] for q in rows[: r["round"] + 1]
                                                                for i in q["selected"]], bundle, seed)
    for round_ in range(len(rows), len(setup.schedule)):
        start = time.time()
        selected: list[str] = []
        if round_ == 0:
            bundle = initial_model(setup, seed)
        else:
            k = setup.schedule[round_] - setup.schedule[round_ - 1]
            selected = select_batch(setup, name, bundle, labelled, side, k, seed, round_)
            labelled += [gold[i] for i in selected]  # the simulated annotator answers
            bundle = train_update(setup, labelled, bundle, seed)
        f1 = evaluate_dev(setup, bundle)
        row = {"setting": setup.setting, "side": side, "strategy": name, "seed": seed,
               "round": round_, "labels": len(labelled),
               "n_source": sum(s.lang == "en" for s in labelled),
               "n_target": sum(s.lang != "en" for s in labelled),
               "f1": f1, "mean_f1": float(np.mean(list(f1.values()))),
               "selected": selected, "seconds": round(time.time() - start, 1)}
        log.append(row)
        bundle.save(folder / "model")
        state_file.write_text(json.dumps({"round": round_}))
        print(f"[{side}/{name}/seed {seed}] round {round_}: {len(labelled)} labels, "
              f"mean F1 {100 * row['mean_f1']:.1f} ({row['seconds']:.0f} s)", flush=True)


# ------------------------------------------------------------------------------------------
# data

def synthetic_corpus(lang: str, n: int, seed: int) -> list[Sentence]:
    """Template sentences with PER/ORG/LOC entities (smoke mode only; no PAN-X needed)."""
    rng = random.Random(f"{lang}-{seed}")
    names = {"PER": [["John", "Smith"], ["Mary"], ["Ana", "Lopez"], ["Hans", "Weber"]],
             "ORG": [["Google"], ["United", "Nations"], ["Microsoft"], ["Siemens", "AG"]],
             "LOC": [["Paris"], ["New", "York"], ["London"], ["Berlin"], ["Madrid"]]}
    verbs = {"en": ["visited", "left", "praised"], "es": ["visitó", "dejó", "elogió"],
             "de": ["besuchte", "verließ", "lobte"], "sw": ["alitembelea", "aliondoka"],
             "hi": ["गया", "छोड़ा"]}[lang]
    out = []
    for i in range(n):
        a, b = rng.sample(sorted(names), 2)
        left, right = rng.choice(names[a]), rng.choice(names[b])
        filler = rng.choice([[], ["the", "city"], ["in", "2019"]])
        tokens = left + [rng.choice(verbs)] + right + filler + ["."]
        tags = ([f"B-{a}"] + [f"I-{a}"] * (len(left) - 1) + ["O"] + [f"B-{b}"]
                + [f"I-{b}"] * (len(right) - 1) + ["O"] * (len(filler) + 1))
        out.append(Sentence.from_tokens(f"syn-{lang}-{i}", lang, tokens, tags))
    return out


def panx(split: str, lang: str) -> list[Sentence]:
    from concner.corpus import read_conll

    return read_conll(PANX / f"{split}-{lang}.tsv", lang, repair_iob=True)


def setting_name(args) -> str:
    """Rows of different settings never mix (the encoder and the sizes are part of the key)."""
    encoder = "smoke" if args.smoke else Path(require_encoder()).name
    return (f"{encoder}-i{args.initial}-s{args.step}-b{args.budget}-p{args.pool_size}"
            f"-d{args.dev_size}-e{args.epochs}-ie{args.initial_epochs}-mc{args.mc_passes}"
            f"-{args.langs.replace(',', '-')}"
            f"-{args.target_pool_lang}-{args.decoding}")


def build_setup(args) -> Setup:
    """Pools, dev sets and configs. The split is the same for every seed (seeds vary the
    models and the strategies' randomness): pools from the head of each shuffled train set,
    unlabelled KD text from its tail, so they never overlap."""
    langs = [x for x in args.langs.split(",") if x]
    tgt = args.target_pool_lang
    need = args.initial + args.pool_size + args.kd_size
    if args.smoke:
        from tests.tiny import make_tiny_encoder_dir

        corpora = {lang: synthetic_corpus(lang, need, 0) for lang in {"en", tgt, *langs}}
        dev = {lang: synthetic_corpus(lang, args.dev_size, 1) for lang in langs}
        vocab = sorted({t for c in [*corpora.values(), *dev.values()] for s in c for t in s.tokens})
        encoder = make_tiny_encoder_dir(args.work / "tiny-encoder", vocab)
    else:
        encoder = require_encoder()
        corpora = {lang: panx("train", lang) for lang in {"en", tgt, *langs}}
        dev = {lang: panx("dev", lang)[: args.dev_size] for lang in langs}
    corpora = {lang: random.Random(0).sample(c, len(c)) for lang, c in sorted(corpora.items())}
    en = corpora["en"]
    initial, en_pool = en[: args.initial], en[args.initial: args.initial + args.pool_size]
    per_lang = max(1, args.kd_size // len(langs))
    kd_text = {"source": [s for lang in langs for s in corpora[lang][-per_lang:]],
               "target": corpora[tgt][-args.kd_size:]}
    target_pool = corpora[tgt][: min(args.pool_size, len(corpora[tgt]) - args.kd_size)]
    overrides = json.loads(args.config) if args.config else {}
    base = {"model": {"encoder": str(encoder), "decoding": args.decoding, **overrides.get("model", {})},
            "loss": {"kd": False, "use_translation": False, **overrides.get("loss", {})},
            "training": {"epochs": args.epochs, "device": "cpu", "eval_every_epoch": False,
                         **overrides.get("training", {})},
            "active": {"mc_passes": args.mc_passes, **overrides.get("active", {})}}
    config = config_from_dict(base, env={})
    initial_config = config_from_dict({**base, "training": {**base["training"],
                                                             "epochs": args.initial_epochs}}, env={})
    return Setup(setting_name(args), config, initial_config, initial,
                 {"source": en_pool, "target": target_pool}, kd_text, dev, args.step, args.budget,
                 args.mc_passes, args.work)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny model and synthetic data, ~1 minute")
    p.add_argument("--sides", default="source,target")
    p.add_argument("--strategies", default="random,mnlp,bald,diversity,teacher_student")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--langs", default="es,de,sw,hi")
    p.add_argument("--target-pool-lang", default="es")
    p.add_argument("--initial", type=int, default=100)
    p.add_argument("--step", type=int, default=150)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--pool-size", type=int, default=5000)
    p.add_argument("--dev-size", type=int, default=500)
    p.add_argument("--kd-size", type=int, default=500, help="unlabelled target sentences for the student")
    p.add_argument("--epochs", type=int, default=2, help="epochs per warm-started update")
    p.add_argument("--initial-epochs", type=int, default=10,
                   help="epochs of the first model (100 sentences need more than 5 to learn)")
    p.add_argument("--mc-passes", type=int, default=4)
    p.add_argument("--decoding", default="viterbi", choices=["viterbi", "argmax"],
                   help="how dev predictions are decoded (viterbi: the product's default)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--config", default="", help='JSON overrides, e.g. {"training": {"batch_size": 8}}')
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--work", type=Path, default=WORK / "active_learning")
    p.add_argument("--report", action="store_true", help="only rewrite the summary from the rows")
    args = p.parse_args(argv)
    if args.smoke:
        for name, value in {"initial": 8, "step": 8, "budget": 24, "pool_size": 40, "dev_size": 16,
                            "kd_size": 16, "epochs": 1, "initial_epochs": 3, "mc_passes": 2,
                            "threads": 1, "langs": "es,de", "seeds": "1"}.items():
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    return args


def report_header(args, setting: str, rows: list[dict]) -> str:
    """Title, setup, reproduce commands and the provenance of ``rows`` for the summary."""
    prov = [r["provenance"] for r in rows if r.get("provenance")]
    machines = sorted({p["machine"] for p in prov})
    dates = sorted(p["date"] for p in prov)
    commits = sorted({p["commit"].removesuffix("+dirty") for p in prov})
    enc = "ENCODER" if args.smoke else Path(require_encoder())
    encoder = "a tiny random encoder (--smoke)" if args.smoke else (
        f"`{enc}` (multilingual-e5-small, vocabulary trimmed to PAN-X train-en/es/de/sw/hi and "
        "dev-es/de/sw/hi: `concner model trim models/e5-small --corpus "
        "../shared/data/panx/train-{en,es,de,sw,hi}.tsv ../shared/data/panx/dev-{es,de,sw,hi}.tsv "
        f"{enc}`)")
    setup = (f"Setting `{setting}`: {args.initial} labelled sentences to start, +{args.step} a "
             f"round up to {args.budget}, pool {args.pool_size}, each round a warm-started update "
             f"of {args.epochs} epochs (stage 1, no KD; the first model {args.initial_epochs} "
             f"epochs), BALD with {args.mc_passes} MC-dropout passes, {args.decoding} decoding, "
             f"mean F1 over the first {args.dev_size} dev sentences of {args.langs}. The target "
             f"side picks {args.target_pool_lang} sentences to correct instead of English ones "
             "to label.")
    reproduce = (f"Encoder: {encoder}. Reproduce (resumable; finished rows are skipped): "
                 f"`CONCNER_BENCH_ENCODER={enc} python "
                 "benchmarks/active_learning.py --threads 1 [--sides source|target] "
                 "[--seeds 1,2] [--strategies ...]`; this summary alone: the same with "
                 "`--report`.")
    made = (f"Rows: {len(rows)}, made on {', '.join(machines) or '?'} with 1 torch thread per "
            f"process, {dates[0] if dates else '?'} to {dates[-1] if dates else '?'}, commits "
            f"{', '.join(commits) or '?'}.")
    title = "# Active learning: labels each strategy needs (simulated annotator, PAN-X gold)"
    return f"{title}\n\n{setup}\n\n{reproduce}\n\n{made}\n"


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    stem = "active_learning_smoke" if args.smoke else "active_learning"
    log = ResultLog(args.out_dir / f"{stem}.jsonl", KEY)
    if not args.report:
        args.work.mkdir(parents=True, exist_ok=True)
        setup = build_setup(args)
        print(f"setting {setup.setting}: schedule {setup.schedule}", flush=True)
        for side in [s for s in args.sides.split(",") if s]:
            for seed in seeds:
                for name in [s for s in args.strategies.split(",") if s]:
                    run(setup, log, side, name, seed)
    setting = setting_name(args)
    rows = [r for r in log.rows if r["setting"] == setting]
    if not rows:  # never overwrite the committed summary with an empty one
        known = sorted({r["setting"] for r in log.rows})
        print(f"no rows for setting {setting} in {log.path}; the rows there are for "
              f"{known or 'nothing yet'} (the encoder and the sizes make the setting: is "
              "CONCNER_BENCH_ENCODER the one the rows were made with?)", file=sys.stderr)
        return 1
    # "complete" asks for the seeds every strategy must have (the default --seeds); more
    # seeds, run for some strategies only, are extra evidence and do not make others
    # incomplete
    defaults = parse_args(["--smoke"] if args.smoke else [])
    required = [int(s) for s in defaults.seeds.split(",")]
    present = sorted({r["seed"] for r in rows})
    summary = write_outputs(rows, args.out_dir, stem, args.budget, required,
                            f"active learning, {args.langs} dev, seeds "
                            f"{', '.join(map(str, present))}", report_header(args, setting, rows))
    print((args.out_dir / f"{stem}.md").read_text(encoding="utf-8"))
    return 0 if summary else 1


if __name__ == "__main__":
    sys.exit(main())
