"""``--smoke`` settings shared by the benchmark scripts: a tiny encoder built on the fly
(tests/tiny.py) and a few dozen PAN-X sentences, so a script runs end to end in about a
minute and cannot rot silently (tests/unit/benchmarks/test_benchmark_smoke.py runs them)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import bench_data as bd
from benchmarks.common import WORK


def tiny_encoder(work: Path, langs: list[str]) -> Path:
    """A tiny BERT whose WordPiece vocabulary covers the words of the smoke data."""
    from tests.tiny import make_tiny_encoder_dir

    words = set()
    for lang in langs:
        for part in ("report", "tune"):
            words.update(t for s in bd.dev(lang, part, 40) for t in s.tokens)
        words.update(t for s in bd.read_panx("train", lang, limit=60) for t in s.tokens)
    return make_tiny_encoder_dir(work / "tiny-encoder", sorted(words))


def smoke_setup(args) -> None:
    """Shrink a quality.py run to a minute: tiny encoder, 40 sentences, 1 epoch, 1 seed."""
    args.work = getattr(args, "smoke_work", None) or WORK / "smoke"
    args.work.mkdir(parents=True, exist_ok=True)
    args.translated = ["es", "de"]
    args.zero_shot = ["sw"]
    args.seeds = [1]
    args.n_source, args.n_unlabelled, args.n_dev, args.source_pool = 40, 30, 30, 400
    args.trim = False
    args.encoder = str(tiny_encoder(args.work, ["en", "es", "de", "sw"]))
    args.results = args.work / "quality_smoke.jsonl"
    args.overrides = {"training": {"epochs": 1, "kd_epochs": 1, "batch_size": 8,
                                   "num_threads": 1},
                      "model": {"freeze_embeddings": False}}
