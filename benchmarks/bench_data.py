"""The benchmark's data, built the same way by every script and cached under benchmarks/work/.

- source: 1,000 English sentences sampled with a fixed seed from ``train-en.tsv``;
- translations: es through Apertium (eng-spa), de and nl through FreeDict dictionaries
  (word by word), projected tags; failed projections are left out (counted);
- unlabelled target text: 2,000 sentences of ``train-<lang>.tsv``, labels dropped;
- evaluation: the first 1,000 sentences of ``dev-<lang>.tsv`` (reported), and sentences
  1,001-2,000 (the tuning slice, never reported);
- the encoder, its vocabulary trimmed to all of the above text.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from benchmarks.common import PANX, WORK
from concner.corpus import iter_conll, read_jsonl, write_jsonl
from concner.sentence import Sentence

SOURCE_SEED = 20221  # fixed: every system and seed sees the same 1,000 sentences
TRANSLATED = {"es": "apertium", "de": "dictionary", "nl": "dictionary"}
ZERO_SHOT = ("sw", "hi", "ar", "zh")


def read_panx(split: str, lang: str, limit: int | None = None, skip: int = 0) -> list[Sentence]:
    """Sentences ``skip .. skip+limit`` of a PAN-X file (stray I- tags repaired, counted)."""
    out = []
    for i, sent in enumerate(iter_conll(PANX / f"{split}-{lang}.tsv", lang, repair_iob=True,
                                        id_prefix=f"{split}-{lang}")):
        if i < skip:
            continue
        if limit is not None and len(out) >= limit:
            break
        out.append(sent)
    return out


def source_sample(n: int = 1000, pool: int | None = None) -> list[Sentence]:
    """``n`` English training sentences sampled with :data:`SOURCE_SEED`."""
    sentences = read_panx("train", "en", limit=pool)
    idx = sorted(random.Random(SOURCE_SEED).sample(range(len(sentences)), n))
    return [sentences[i] for i in idx]


def unlabelled(lang: str, n: int = 2000) -> list[Sentence]:
    """``n`` target sentences from the training file, tags removed."""
    sentences = read_panx("train", lang)
    rng = random.Random(SOURCE_SEED + 1)
    idx = sorted(rng.sample(range(len(sentences)), min(n, len(sentences))))
    return [sentences[i].with_tags(None) for i in idx]


def dev(lang: str, part: str = "report", n: int = 1000) -> list[Sentence]:
    """``report``: the first ``n`` dev sentences; ``tune``: the next ``n``."""
    return read_panx("dev", lang, limit=n, skip=0 if part == "report" else n)


def translations(source: list[Sentence], lang: str, *, work: Path = WORK) -> tuple[list[Sentence], dict]:
    """Projected translations of ``source`` into ``lang`` (cached), and projection counts."""
    from concner.translation.base import status_counts, usable_pairs
    from concner.translation.cache import TranslationCache

    key = f"{len(source)}-{source[0].id}-{source[-1].id}"
    path = work / "translations" / f"{lang}-{key}.jsonl"
    stats_path = path.with_suffix(".stats.json")
    if path.exists() and stats_path.exists():
        return read_jsonl(path), json.loads(stats_path.read_text())
    cache = TranslationCache(work / "translations" / "cache.sqlite")
    if TRANSLATED[lang] == "apertium":
        from concner.translation.apertium import ApertiumTranslator

        translator = ApertiumTranslator("eng-spa", cache=cache)
    else:
        from concner.translation.dictionary import DictionaryTranslator

        translator = DictionaryTranslator("en")  # local and fast: no cache needed
    pairs = translator.translate(source, lang)
    _, usable = usable_pairs(pairs)
    stats = {"backend": TRANSLATED[lang], **status_counts(pairs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(usable, path)
    stats_path.write_text(json.dumps(stats))
    return read_jsonl(path), stats


def trimmed_encoder(encoder: Path, corpora: list[list[Sentence]], *, work: Path = WORK) -> Path:
    """The encoder with its vocabulary cut to the pieces of ``corpora`` (built once)."""
    from concner.encoders.trim import trim_encoder

    out = work / "encoders" / f"{encoder.name}-trim-bench"
    if (out / "config.json").exists():
        return out
    sentences = [s for corpus in corpora for s in corpus]
    trim_encoder(encoder, sentences, out, corpus_names=["benchmark text"])
    return out
