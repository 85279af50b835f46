"""``concner translate``: translate labelled sentences and project their tags.

Examples::

    concner translate --backend apertium --pair eng-spa --in en.tsv --out es.jsonl
    concner translate --backend dictionary --target de,nl --in en.tsv --out tr-{lang}.jsonl
    concner translate --backend hf --model Helsinki-NLP/opus-mt-en-de --target de \
        --in en.tsv --out de.jsonl
    concner translate --backend file --translations mine.jsonl --target es --in en.tsv \
        --out es.jsonl

Only usable pairs (projection ok or repaired) are written; each written sentence carries
``meta.source_id`` and ``meta.projection``. A summary line per target language gives the
counts and the projection rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from concner.config import load_config
from concner.errors import ConfigError
from concner.translation.base import Translator, status_counts, usable_pairs
from concner.translation.requests import BACKENDS, SHARE, open_translator


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "translate", help="translate labelled sentences and project their entity tags",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS, required=True)
    p.add_argument("--in", dest="input", required=True,
                   help="labelled source sentences (.tsv/.conll or .jsonl)")
    p.add_argument("--out", required=True,
                   help="output .jsonl or .tsv; with several targets include {lang}")
    p.add_argument("--lang", default=None, help="source language (default: data.source_lang)")
    p.add_argument("--pair", help="Apertium pair, e.g. eng-spa (apertium backend)")
    p.add_argument("--target", help="target language(s), comma-separated (not for apertium)")
    p.add_argument("--model", help="hub id or local folder of a seq2seq model (hf backend)")
    p.add_argument("--translations", help="your translations, JSONL or TSV (file backend)")
    p.add_argument("--share", type=float,
                   help=f"dictionary: share of words to replace ({SHARE.allowed()}; default "
                        "translation.dictionary_share)")
    p.add_argument("--seed", type=int, help="dictionary: seed of the word choice")
    p.add_argument("--cache", help="translation cache (SQLite; default translation.cache_path)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--limit", type=int, help="translate only the first N sentences")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--repair-iob", action="store_true",
                   help="turn stray I-X tags of the input into B-X instead of stopping")
    p.set_defaults(func=run)


def build_translator(args, config) -> tuple[Translator, list[str]]:
    """The backend object and the target languages the arguments ask for (each missing or
    clashing flag is named; the object comes from
    :func:`concner.translation.requests.open_translator`, as for the job and the app)."""
    targets = [t.strip() for t in (args.target or "").split(",") if t.strip()]
    source_lang = args.lang or config.data.source_lang
    options: dict = {"cache": False if args.no_cache else (args.cache or True)}
    if args.backend == "apertium":
        from concner.translation.langcodes import split_pair

        if not args.pair:
            raise ConfigError("--backend apertium needs --pair (e.g. eng-spa)")
        target = split_pair(args.pair)[1]
        if targets and targets != [target]:
            raise ConfigError(f"--pair {args.pair} translates into {target}; drop --target")
        targets = [target]
        options["pair"] = args.pair
    elif not targets:
        raise ConfigError(f"--backend {args.backend} needs --target (e.g. de or de,nl)")
    elif args.backend == "dictionary":
        if args.share is not None and SHARE.problem(args.share) is not None:
            raise ConfigError(f"--share must be {SHARE.allowed()}")
        options = {"share": args.share, "seed": args.seed}
    elif args.backend == "hf":
        if not args.model:
            raise ConfigError("--backend hf needs --model (hub id or local folder)")
        options["model"] = args.model
    else:
        if not args.translations:
            raise ConfigError("--backend file needs --translations (your JSONL or TSV file)")
        if len(targets) != 1:
            raise ConfigError("--backend file takes one --target language")
        options = {"translations": args.translations}
    return open_translator(config, args.backend, source_lang, options), targets


def _write(sentences, path: Path) -> None:
    from concner.corpus import write_conll, write_jsonl

    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        write_jsonl(sentences, path)
    else:
        write_conll(sentences, path)


def run(args) -> int:
    from concner.corpus import read_any

    config = load_config(args.config)
    lang = args.lang or config.data.source_lang
    translator, targets = build_translator(args, config)
    if len(targets) > 1 and "{lang}" not in args.out:
        raise ConfigError("with several --target languages, put {lang} in --out")
    sentences = read_any(args.input, lang, repair_iob=args.repair_iob)
    if args.limit is not None:
        sentences = sentences[:args.limit]
    for target in targets:
        started = time.perf_counter()
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(sentences), desc=f"{translator.backend} -> {target}",
                       unit="sent", file=sys.stderr)

        def progress(done: int, total: int, bar=bar) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        pairs = translator.translate(sentences, target, progress=progress)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - started
        out = Path(args.out.replace("{lang}", target))
        _, translations = usable_pairs(pairs)
        _write(translations, out)
        counts = status_counts(pairs)
        n = max(len(pairs), 1)
        print(f"{target}: {len(pairs)} sentences, projected ok {counts['ok']} / repaired "
              f"{counts['repaired']} / failed {counts['failed']}, {seconds:.1f} s; "
              f"projection rate {(counts['ok'] + counts['repaired']) / n:.1%}; "
              f"wrote {len(translations)} to {out}")
    return 0
