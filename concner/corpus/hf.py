"""Hugging Face ``datasets``: a ``save_to_disk`` folder, parquet, or a hub id."""

from __future__ import annotations

from pathlib import Path

from concner.corpus.common import ReadReport, check_tags
from concner.errors import DataFormatError
from concner.labels import LabelSchema
from concner.sentence import Sentence


# --------------------------------------------------------------------------------------
def read_hf(
    source: str,
    lang: str,
    *,
    split: str = "train",
    config_name: str | None = None,
    schema: LabelSchema | None = None,
    repair_iob: bool = False,
    limit: int | None = None,
) -> list[Sentence]:
    """Sentences from a ``datasets`` source: a ``save_to_disk`` folder, parquet file(s), or a
    hub id such as ``unimelb-nlp/wikiann`` with a language config (``config_name``, default
    ``lang``). Needs ``tokens`` and ``ner_tags`` columns (ClassLabel ids or strings)."""
    import datasets

    path = Path(source)
    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
        elif path.suffix == ".parquet" or any(ch in source for ch in "*?"):
            ds = datasets.load_dataset("parquet", data_files=str(source))
        elif path.exists():
            raise DataFormatError("not a datasets folder or parquet file", path=source)
        else:
            ds = datasets.load_dataset(source, config_name or lang)
    except DataFormatError:
        raise
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as exc:
        raise DataFormatError(
            f"could not load the dataset ({type(exc).__name__}: {str(exc)[:200]}). A hub id "
            "needs internet access; offline, save it elsewhere with `save_to_disk` or as parquet "
            "and pass that path",
            path=source,
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataFormatError(f"no split {split!r}; it has {sorted(ds)}", path=source)
        ds = ds[split]
    for column in ("tokens", "ner_tags"):
        if column not in ds.column_names:
            raise DataFormatError(f"no {column!r} column; it has {ds.column_names}", path=source)
    feature = ds.features["ner_tags"]
    names = getattr(getattr(feature, "feature", None), "names", None)
    report = ReadReport(source)
    out = []
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in range(n):
        row = ds[i]
        raw = row["ner_tags"]
        if names is not None:
            raw = [names[t] for t in raw]
        elif raw and isinstance(raw[0], int):
            raw = (schema or LabelSchema(["PER", "ORG", "LOC"])).decode(raw)
        tags = check_tags(list(raw), name=source, first_line=i + 1, lines=[i + 1] * len(raw),
                           schema=schema, repair_iob=repair_iob, report=report)
        sid = str(row.get("id", f"{Path(source).name}-{split}-{i}"))
        out.append(Sentence.from_tokens(sid, row.get("lang") or lang, row["tokens"], tags,
                                        meta={"source_file": source, "line": i + 1}))
    return out
