"""A persistent translation cache: SQLite, keyed by (backend, model, target, source text).

The source text is the engine input (marked text), so a changed marker style or
protected-type setting is a different key; ``model`` carries engine, pair and such
settings. Re-running on a grown source set translates only the sentences not seen before.
Only the engine backends (``apertium``, ``hf``) are cached; ``dictionary`` and ``file``
are local lookups that are faster than a cache read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from concner.errors import ServiceUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    backend TEXT NOT NULL,
    model   TEXT NOT NULL,
    target  TEXT NOT NULL,
    source  TEXT NOT NULL,
    output  TEXT NOT NULL,
    PRIMARY KEY (backend, model, target, source)
)
"""
#: SQLite limits the number of ``?`` parameters in one statement; query in chunks.
_CHUNK = 500


class TranslationCache:
    """SQLite-backed cache. ``path`` may be ``":memory:"``. Safe to share between runs;
    one object per thread."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as exc:
            raise ServiceUnavailable(
                f"cannot open the translation cache {self.path}: {exc}; pass another --cache "
                "path or delete the file if it is corrupt") from None
        self.hits = 0
        self.misses = 0

    def get_many(self, backend: str, model: str, target: str, sources: Iterable[str]
                 ) -> dict[str, str]:
        """Cached outputs for those ``sources`` that have one (``{source: output}``)."""
        wanted = list(dict.fromkeys(sources))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT source, output FROM translations WHERE backend=? AND model=? "
                f"AND target=? AND source IN ({marks})", (backend, model, target, *chunk))
            found.update(rows.fetchall())
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def put_many(self, backend: str, model: str, target: str,
                 items: Iterable[tuple[str, str]]) -> None:
        """Store ``(source, output)`` pairs (replacing older outputs for the same key)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?)",
            [(backend, model, target, s, o) for s, o in items])
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM translations").fetchone()[0]

    def close(self) -> None:
        self._db.close()
