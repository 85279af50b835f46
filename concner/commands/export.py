"""``concner export``: a project's data as a Hugging Face DatasetDict, parquet, CoNLL or
JSONL (see :mod:`concner.corpus.export`), optionally pushed to the Hugging Face Hub."""

from __future__ import annotations

import os

from concner.errors import ConcnerError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a project's labelled data (hf, parquet, conll, jsonl)",
        description=__doc__)
    p.add_argument("--project", required=True, help="project name")
    p.add_argument("--what", default="source,translations,target",
                   help="comma-separated parts: source, translations, target, silver "
                        "(default: source,translations,target)")
    p.add_argument("--format", dest="fmt", default="hf",
                   choices=["hf", "parquet", "conll", "jsonl"], help="output format (default hf)")
    p.add_argument("--layout", default="parts", choices=["parts", "run_ner"],
                   help="parts: one split per part; run_ner: train/validation/test")
    p.add_argument("--out", required=True, help="output folder (must not exist unless "
                                                "--overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--push-to-hub", metavar="REPO", help="also push to the Hub as user/name")
    p.add_argument("--token-env", metavar="VAR", default="HF_TOKEN",
                   help="environment variable holding the Hub write token (default HF_TOKEN)")
    p.add_argument("--public", action="store_true", help="make the Hub dataset public")
    p.add_argument("--config", help="TOML config (for the store URL)")
    p.set_defaults(func=run)


def run(args) -> int:
    import datasets

    from concner.config import load_config
    from concner.corpus.export import check_parts, gather, push_to_hub, write_export
    from concner.labels import LabelSchema
    from concner.store import Store

    datasets.disable_progress_bars()
    parts = check_parts(args.what.split(","))
    token = None
    if args.push_to_hub:
        token = os.environ.get(args.token_env)
        if not token:
            raise ConcnerError(f"--push-to-hub needs a token in ${args.token_env}; "
                               "set it (a write token from huggingface.co) or name another "
                               "variable with --token-env")
    config = load_config(args.config)
    store = Store(config.services.database_url)
    project = store.get_project(args.project)
    schema = LabelSchema.from_dict(project.label_schema)
    splits = gather(store, args.project, parts)
    result = write_export(splits, schema, args.fmt, args.out, layout=args.layout,
                          overwrite=args.overwrite)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    print(f"exported {counts} ({args.fmt}) to {result.path}")
    if args.push_to_hub:
        url = push_to_hub(splits, schema, args.push_to_hub, token, layout=args.layout,
                          private=not args.public)
        print(f"pushed to {url}")
    return 0
