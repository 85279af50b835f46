"""What ``concner predict``, ``concner evaluate`` and ``concner select`` share: the options
of a saved model, reading the input file, loading the predictor and predicting in chunks.

No ``register`` here: :mod:`concner.cli` makes a command of every module that has one."""

from __future__ import annotations

import sys
from pathlib import Path

from concner.config import DECODINGS, DEVICES
from concner.errors import ConcnerError, DataFormatError

#: sentences handed to the predictor at a time (bounds memory; results do not depend on it)
CHUNK_SENTENCES = 2048


def add_prediction_options(p) -> None:
    """The options every command that runs a saved model takes (language, batch, device,
    threads, decoding, IOB repair)."""
    p.add_argument("--lang", help="language code (ISO 639-1) when the file does not give one")
    p.add_argument("--batch-size", type=int, default=64,
                   help="at most this many sentences per forward pass (on CPU also at most "
                        "1,024 padded tokens; the speed benchmark's setting)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (0: torch's default)")
    p.add_argument("--decoding", choices=DECODINGS,
                   help="tag decoding (default: the model's model.decoding)")
    p.add_argument("--repair-iob", action="store_true",
                   help="turn stray I-X tags of labelled input into B-X instead of stopping")


def read_input(path: str, lang: str | None, fmt: str, repair_iob: bool = False):
    """The sentences of ``path`` in ``fmt`` (``text``: one per line, needs ``lang``)."""
    from concner.corpus import read_any, read_text_lines

    if not Path(path).exists() and fmt in ("text", "conll", "jsonl"):
        raise DataFormatError("file not found", path=path)
    if fmt == "text":
        if not lang:
            raise ConcnerError("--format text needs --lang (e.g. --lang en)")
        return read_text_lines(path, lang)
    return read_any(path, lang, fmt=fmt, repair_iob=repair_iob)


def load_predictor(args):
    """A :class:`~concner.method.inference.Predictor` of ``--model`` with the options of
    :func:`add_prediction_options`."""
    import torch

    from concner.method.inference import Predictor
    from concner.method.model import NerBundle

    if args.threads < 0:
        raise ConcnerError("--threads must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = NerBundle.load(args.model)
    return Predictor(bundle, batch_size=args.batch_size, device=args.device,
                     decoding=args.decoding)


def predict_all(predictor, sentences, desc: str, *, embeddings: bool = False):
    """``(predictions, [N, H] sentence embeddings or None)`` in chunks of
    :data:`CHUNK_SENTENCES`, with a progress bar on a terminal."""
    from tqdm import tqdm

    with tqdm(total=len(sentences), desc=desc, unit="sent", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        return predictor.predict_in_chunks(sentences, chunk=CHUNK_SENTENCES,
                                           embeddings=embeddings, on_chunk=bar.update)
