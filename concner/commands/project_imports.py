"""``concner project imports NAME`` and ``concner project unimport NAME IMPORT_ID``: list a
project's imports, and undo one (its sentences, their labels, translations and predictions
go, in one transaction, after you confirm what goes; see :mod:`concner.store.imports`)."""

from __future__ import annotations

import json
import sys

from concner.commands.common import config_from_args, open_store


def add_actions(sub) -> None:
    """Add the two actions to ``concner project``'s sub-parsers (not named ``register``:
    :mod:`concner.cli` would make them top-level commands)."""
    i = sub.add_parser("imports", help="list a project's imports (to undo one: unimport)")
    i.add_argument("name")
    i.add_argument("--json", action="store_true", help="one JSON object per import")
    i.set_defaults(func=run_imports)

    u = sub.add_parser("unimport", help="delete the sentences of one import (see imports)")
    u.add_argument("name")
    u.add_argument("import_id", type=int, help="the id that concner project imports shows")
    u.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    u.set_defaults(func=run_unimport)


def _project_store(args):
    """The store, read the way every ``concner project`` action reads it."""
    return open_store(config_from_args(args))


def run_imports(args) -> int:
    batches = _project_store(args).import_batches(args.name)
    if args.json:
        for b in batches:
            print(json.dumps({"id": b.id, "source_name": b.source_name, "role": b.role,
                              "split": b.split, "lang": b.lang, "n_sentences": b.n_sentences,
                              "n_left": b.n_left, "created_at": b.created_at.isoformat()}))
        return 0
    if not batches:
        print(f"project {args.name!r} has no recorded imports (sentences imported before "
              "schema 0006 belong to none)")
    for b in batches:
        print(b.describe())
    return 0


def run_unimport(args) -> int:
    store = _project_store(args)
    preview = store.preview_import_deletion(args.name, args.import_id)
    if not args.yes:
        print(f"Undoing {preview.batch.describe()} of project {args.name!r} deletes for good: "
              f"{preview.summary()}.")
        try:
            answer = input(f"Type the import id ({args.import_id}) to delete it: ")
        except EOFError:
            answer = ""
        if answer.strip() != str(args.import_id):
            print(f"Not deleted: the answer was not {args.import_id} (pass --yes to skip the "
                  "question).", file=sys.stderr)
            return 1
    from concner.jobs.unimport import undo_import

    deleted, dev_note = undo_import(store, args.name, args.import_id)
    print(f"deleted import {args.import_id} of {args.name!r}: {deleted.summary()}"
          + (f"\n{dev_note}" if dev_note else ""))
    return 0
