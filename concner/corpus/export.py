"""Export labelled sentences as a Hugging Face ``DatasetDict``, parquet, CoNLL or JSONL.

The input is always ``{split name: [Sentence, ...]}`` with tags on every sentence (gold,
projected or model-predicted "silver" tags). Columns of the Hugging Face forms:

- ``id`` (string), ``lang`` (string), ``text`` (string),
- ``tokens``: ``Sequence(Value("string"))``,
- ``ner_tags``: ``Sequence(ClassLabel(names=schema.tags))`` (so ``run_ner.py`` reads the label
  list from the features, as it does for ``wikiann``),
- ``offsets``: per-token ``[start, end]`` character offsets into ``text``,
- ``meta``: the sentence's metadata as a JSON object string (free-form, so not a struct).

Layouts: ``"parts"`` keeps one split per part (``source``, ``translations``, ``target_dev``,
...); ``"run_ner"`` merges them into ``train`` / ``validation`` / ``test`` (see
:func:`run_ner_layout`) so ``run_ner.py --dataset_name <parquet folder>`` runs as is.

Every writer builds the output in a temporary sibling folder and renames it into place,
so a failed export never leaves a half-written folder behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from concner.errors import ConcnerError, DataFormatError, LabelSchemaError
from concner.labels import LabelSchema, split_tag
from concner.sentence import Sentence

#: What can be exported (see :mod:`concner.commands.export`).
PARTS: tuple[str, ...] = ("source", "translations", "target", "silver")
#: How it can be written.
FORMATS: tuple[str, ...] = ("hf", "parquet", "conll", "jsonl")
LAYOUTS: tuple[str, ...] = ("parts", "run_ner")

_SPLIT_RE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass
class ExportResult:
    """What was written: the output path, the files in it and sentences per split."""

    path: Path
    fmt: str
    files: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


# -- checks --------------------------------------------------------------------------------
def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConcnerError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def check_parts(parts: Sequence[str]) -> list[str]:
    """Validate a list of part names (``source``, ``translations``, ``target``, ``silver``)."""
    chosen = [p.strip() for p in parts if p.strip()]
    if not chosen:
        raise ConcnerError(f"nothing to export: choose at least one of {', '.join(PARTS)}")
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        raise ConcnerError(
            f"unknown export part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}"
        )
    return chosen


def _check_splits(splits: Mapping[str, Sequence[Sentence]], schema: LabelSchema) -> None:
    if not splits or not any(splits.values()):
        raise ConcnerError("nothing to export: every chosen part is empty")
    for name, sentences in splits.items():
        if not _SPLIT_RE.match(name):
            raise ConcnerError(
                f"split name {name!r} is not valid: use letters, digits and underscores"
            )
        for s in sentences:
            if s.tags is None:
                raise LabelSchemaError(
                    f"sentence {s.id} ({name}) has no tags: only labelled sentences can be "
                    "exported (predict the pool first to export it as silver data)"
                )
            try:
                schema.check_tags(s.tags)
            except LabelSchemaError as exc:
                raise LabelSchemaError(f"sentence {s.id} ({name}): {exc}") from None


# -- layouts -------------------------------------------------------------------------------
def run_ner_layout(splits: Mapping[str, Sequence[Sentence]]) -> dict[str, list[Sentence]]:
    """Merge part splits into ``run_ner.py``'s ``train`` / ``validation`` / ``test``.

    ``*_dev`` and ``validation`` go to ``validation``, ``*_test`` and ``test`` to ``test``,
    everything else (source gold, translations, silver, ``*_train``) to ``train``. The
    origin stays visible in each sentence's ``meta["part"]``.
    """
    out: dict[str, list[Sentence]] = {"train": [], "validation": [], "test": []}
    for name, sentences in splits.items():
        if name == "validation" or name.endswith("_dev") or name == "dev":
            target = "validation"
        elif name == "test" or name.endswith("_test"):
            target = "test"
        else:
            target = "train"
        for s in sentences:
            meta = dict(s.meta)
            meta.setdefault("part", name)
            out[target].append(Sentence(s.id, s.lang, list(s.tokens), list(s.tags or []),
                                        s.text, list(s.offsets), meta))
    return {k: v for k, v in out.items() if v}


def arrange(splits: Mapping[str, Sequence[Sentence]], layout: str) -> dict[str, list[Sentence]]:
    if layout == "parts":
        return {k: list(v) for k, v in splits.items() if v}
    if layout == "run_ner":
        return run_ner_layout(splits)
    raise ConcnerError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


# -- Hugging Face --------------------------------------------------------------------------
def dataset_features(schema: LabelSchema):
    """The ``datasets.Features`` of an export (``ner_tags`` carry ``schema.tags`` as names)."""
    from datasets import ClassLabel, Features, Value
    from datasets import Sequence as HFSequence

    return Features({
        "id": Value("string"),
        "lang": Value("string"),
        "text": Value("string"),
        "tokens": HFSequence(Value("string")),
        "ner_tags": HFSequence(ClassLabel(names=list(schema.tags))),
        "offsets": HFSequence(HFSequence(Value("int32"))),
        "meta": Value("string"),
    })


def _columns(sentences: Sequence[Sentence], schema: LabelSchema) -> dict[str, list]:
    return {
        "id": [s.id for s in sentences],
        "lang": [s.lang for s in sentences],
        "text": [s.text for s in sentences],
        "tokens": [list(s.tokens) for s in sentences],
        "ner_tags": [schema.encode(s.tags or []) for s in sentences],
        "offsets": [[list(o) for o in s.offsets] for s in sentences],
        "meta": [json.dumps(s.meta, ensure_ascii=False, sort_keys=True, default=str)
                 for s in sentences],
    }


def to_dataset_dict(splits: Mapping[str, Sequence[Sentence]], schema: LabelSchema):
    """Build a ``datasets.DatasetDict`` (one ``Dataset`` per split, features as above)."""
    from datasets import Dataset, DatasetDict

    _check_splits(splits, schema)
    features = dataset_features(schema)
    return DatasetDict({
        name: Dataset.from_dict(_columns(sentences, schema), features=features)
        for name, sentences in splits.items()
    })


def schema_from_features(features) -> LabelSchema:
    """Rebuild the :class:`LabelSchema` from an export's ``ner_tags`` ClassLabel names."""
    try:
        names = list(features["ner_tags"].feature.names)
    except (KeyError, AttributeError) as exc:
        raise DataFormatError("dataset has no ClassLabel 'ner_tags' column; was it exported "
                              "by concner?") from exc
    types: list[str] = []
    for tag in names:
        _, etype = split_tag(tag)
        if etype is not None and etype not in types:
            types.append(etype)
    schema = LabelSchema(types)
    if schema.tags != names:
        raise DataFormatError(f"ner_tags names {names} are not an ordered IOB2 tag set")
    return schema


def sentences_from_dataset(dataset, schema: LabelSchema | None = None) -> list[Sentence]:
    """Turn one exported ``Dataset`` back into sentences (tags decoded to IOB2 strings)."""
    schema = schema or schema_from_features(dataset.features)
    out = []
    for row in dataset:
        meta = json.loads(row["meta"]) if row.get("meta") else {}
        out.append(Sentence(row["id"], row["lang"], list(row["tokens"]),
                            schema.decode(row["ner_tags"]), row["text"],
                            [tuple(o) for o in row["offsets"]], meta))
    return out


# -- writers -------------------------------------------------------------------------------
def _dataset_card(splits: Mapping[str, Sequence[Sentence]], schema: LabelSchema) -> str:
    """README.md whose YAML ``configs`` lets ``load_dataset(folder)`` find every split."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for name in splits:
        lines += [f"  - split: {name}", f"    path: data/{name}.parquet"]
    lines += ["---", "", "# ConCNER Studio export", "",
              f"Labels (IOB2, `ner_tags` ClassLabel order): {', '.join(schema.tags)}", "",
              "| split | sentences |", "|---|---|"]
    lines += [f"| {name} | {len(s)} |" for name, s in splits.items()]
    return "\n".join(lines) + "\n"


def _write_into(folder: Path, splits: Mapping[str, Sequence[Sentence]], schema: LabelSchema,
                fmt: str) -> None:
    if fmt == "hf":
        to_dataset_dict(splits, schema).save_to_disk(str(folder))
        return
    if fmt == "parquet":
        dd = to_dataset_dict(splits, schema)
        (folder / "data").mkdir(parents=True)
        for name, ds in dd.items():
            ds.to_parquet(str(folder / "data" / f"{name}.parquet"))
        (folder / "README.md").write_text(_dataset_card(splits, schema), encoding="utf-8")
        return
    from concner import corpus

    _check_splits(splits, schema)
    folder.mkdir(parents=True, exist_ok=True)
    for name, sentences in splits.items():
        if fmt == "jsonl":
            corpus.write_jsonl(list(sentences), folder / f"{name}.jsonl")
            continue
        # CoNLL has no room for the language: one file per language, named so that
        # corpus.read_conll recognises it (``<split>-<lang>.conll``).
        by_lang: dict[str, list[Sentence]] = {}
        for s in sentences:
            by_lang.setdefault(s.lang, []).append(s)
        for lang, group in by_lang.items():
            corpus.write_conll(group, folder / f"{name}-{lang}.conll")
    (folder / "labels.json").write_text(json.dumps(schema.to_dict(), indent=2) + "\n",
                                        encoding="utf-8")


def write_export(splits: Mapping[str, Sequence[Sentence]], schema: LabelSchema, fmt: str,
                 out: str | os.PathLike, *, layout: str = "parts",
                 overwrite: bool = False) -> ExportResult:
    """Write ``splits`` to the folder ``out`` in format ``fmt``.

    ``hf``: ``DatasetDict.save_to_disk`` (load with ``datasets.load_from_disk``);
    ``parquet``: ``data/<split>.parquet`` + a README whose YAML lists the splits (load with
    ``datasets.load_dataset(out)``); ``jsonl``: ``<split>.jsonl`` (``tokens``, ``ner_tags``
    as strings, ``id``, ``lang``, ``meta``; the keys ``run_ner.py`` expects);
    ``conll``: ``<split>-<lang>.conll`` (``token<TAB>tag``); both with ``labels.json``. The folder appears only when complete.
    """
    check_format(fmt)
    arranged = arrange(splits, layout)
    _check_splits(arranged, schema)
    target = Path(out)
    if target.exists():
        if not overwrite:
            raise ConcnerError(f"{target} already exists; choose another path or overwrite it")
        if not target.is_dir():
            raise ConcnerError(f"{target} exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build = staging / "export"
        _write_into(build, arranged, schema, fmt)
        if target.exists():
            old = staging / "old"
            os.replace(target, old)
        os.replace(build, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = sorted(p for p in target.rglob("*") if p.is_file())
    return ExportResult(target, fmt, files, {k: len(v) for k, v in arranged.items()})


def export_zip(splits: Mapping[str, Sequence[Sentence]], schema: LabelSchema, fmt: str, *,
               layout: str = "parts", name: str = "concner-export") -> bytes:
    """The same export as a zip archive in memory (for a download button)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = write_export(splits, schema, fmt, Path(tmp) / name, layout=layout)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in result.files:
                zf.write(path, Path(name) / path.relative_to(result.path))
        return buffer.getvalue()


def push_to_hub(splits: Mapping[str, Sequence[Sentence]], schema: LabelSchema, repo: str,
                token: str, *, layout: str = "parts", private: bool = True) -> str:
    """Push the ``DatasetDict`` to the Hugging Face Hub as ``repo`` with the user's token.

    The token is passed through and never logged. Network errors become
    :class:`~concner.errors.ServiceUnavailable`. Returns the dataset URL.
    """
    from concner.errors import ServiceUnavailable

    if not token:
        raise ConcnerError("pushing to the hub needs a token: set it in the variable you "
                           "named with --token-env (a write token from huggingface.co)")
    if not re.match(r"^[\w.-]+/[\w.-]+$", repo):
        raise ConcnerError(f"hub repository {repo!r} must look like 'user/name'")
    dd = to_dataset_dict(arrange(splits, layout), schema)
    try:
        dd.push_to_hub(repo, token=token, private=private)
    except Exception as exc:  # noqa: BLE001 - any hub/network failure; message scrubbed
        message = str(exc).replace(token, "***")
        raise ServiceUnavailable(f"push to the Hugging Face Hub failed for {repo}: "
                                 f"{type(exc).__name__}: {message}") from None
    return f"https://huggingface.co/datasets/{repo}"


# -- reading an export back ----------------------------------------------------------------
def detect_export_format(path: str | os.PathLike) -> str:
    """The format of the export folder ``path``: ``hf``, ``parquet``, ``conll`` or ``jsonl``
    (unlike :func:`concner.corpus.detect_format`, which tells a corpus file's format)."""
    p = Path(path)
    if (p / "dataset_dict.json").is_file():
        return "hf"
    if (p / "data").is_dir() and any((p / "data").glob("*.parquet")):
        return "parquet"
    if any(p.glob("*.conll")):
        return "conll"
    if any(p.glob("*.jsonl")):
        return "jsonl"
    raise DataFormatError("not a concner export folder (no dataset_dict.json, data/*.parquet,"
                          " *.conll or *.jsonl)", path=str(p))


def read_export(path: str | os.PathLike, *, fmt: str | None = None
                ) -> tuple[dict[str, list[Sentence]], LabelSchema]:
    """Read an export folder back into ``({split: sentences}, schema)``.

    CoNLL keeps tokens and tags only: ids are renumbered, the language comes from the
    file name, and within a split sentences come grouped by language.
    """
    p = Path(path)
    fmt = check_format(fmt) if fmt else detect_export_format(p)
    if fmt in ("hf", "parquet"):
        import datasets

        if fmt == "hf":
            dd = datasets.load_from_disk(str(p))
        else:  # read directly: no copy into the datasets cache
            import pyarrow.parquet as pq

            dd = {f.stem: datasets.Dataset(pq.read_table(f))
                  for f in sorted((p / "data").glob("*.parquet"))}
        splits = {name: sentences_from_dataset(ds) for name, ds in dd.items()}
        schema = schema_from_features(next(iter(dd.values())).features)
        return splits, schema
    from concner import corpus

    labels = p / "labels.json"
    if not labels.is_file():
        raise DataFormatError("labels.json is missing from the export", path=str(p))
    schema = LabelSchema.from_dict(json.loads(labels.read_text(encoding="utf-8")))
    splits: dict[str, list[Sentence]] = {}
    if fmt == "jsonl":
        for f in sorted(p.glob("*.jsonl")):
            splits[f.stem] = corpus.read_jsonl(f, None, schema=schema)
        return splits, schema
    for f in sorted(p.glob("*.conll")):
        split, _, lang = f.stem.rpartition("-")
        if not split:
            raise DataFormatError("CoNLL export files are named <split>-<lang>.conll",
                                  path=str(f))
        splits.setdefault(split, []).extend(corpus.read_conll(f, lang, schema=schema))
    return splits, schema


# -- gathering the parts from the store ----------------------------------------------------
def gather(store, project: str, parts: Sequence[str]) -> dict[str, list[Sentence]]:
    """The chosen parts of a project as ``{split name: sentences}`` with current tags.

    ``source`` -> ``source`` (and ``source_dev``); ``translations`` -> ``translations``
    (projected tags; ``meta`` has the link); ``target`` -> ``target_dev`` (gold) and
    ``target_train`` (pool sentences annotators labelled); ``silver`` -> ``silver``: the
    active model's predictions on still-unlabelled target sentences (``meta`` carries the
    model version and uncertainty). Empty splits are left out.
    """
    out: dict[str, list[Sentence]] = {}

    def put(name: str, sentences: list[Sentence]) -> None:
        if sentences:
            out.setdefault(name, []).extend(sentences)

    for part in check_parts(parts):
        if part == "source":
            for s in store.sentences(project, role="source", labelled=True):
                put("source_dev" if s.meta.get("split") == "dev" else "source", [s])
        elif part == "translations":
            put("translations", store.sentences(project, role="translation", labelled=True))
        elif part == "target":
            for s in store.sentences(project, role="target", labelled=True):
                put("target_dev" if s.meta.get("split") == "dev" else "target_train", [s])
        elif part == "silver":
            active = store.active_model_version(project)
            if active is None:
                raise ConcnerError(f"project {project!r} has no active model, so there are no "
                                   "predictions to export as silver data; train one first")
            predicted = {p.sentence_id: p for p in store.predictions(active.id)}
            silver = []
            for s in store.sentences(project, role="target", labelled=False):
                p = predicted.get(s.meta.get("db_id"))
                if p is None:
                    continue
                meta = {**s.meta, "model_version": active.version,
                        "uncertainty": p.uncertainty}
                silver.append(Sentence(s.id, s.lang, list(s.tokens), list(p.tags), s.text,
                                       list(s.offsets), meta))
            if not silver:
                raise ConcnerError(f"the active model v{active.version} has no predictions on "
                                   "unlabelled target sentences yet; run predict_pool first")
            put("silver", silver)
    return out
