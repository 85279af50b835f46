"""Engines, sessions and migrations of the store.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys on; write
transactions start with ``BEGIN IMMEDIATE`` so two writers queue instead of failing on a
lock upgrade, and read transactions are plain ``BEGIN`` (a consistent WAL snapshot).
PostgreSQL reads that must see one snapshot use ``REPEATABLE READ``. Keep transactions
short: the worker never holds one open while training.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from concner.errors import ConcnerError, ServiceUnavailable, StoreConflict

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_UPGRADE_LOCK = threading.Lock()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the concurrency settings described in the module doc."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ConcnerError(
                f"database URL {url!r}: an in-memory SQLite store cannot be shared by the app "
                "and the worker; use a file, e.g. sqlite:///concner-data/concner.db")
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except ImportError as exc:  # missing DBAPI driver
        raise ServiceUnavailable(f"database URL {url!r}: driver not installed ({exc})") from exc


def upgrade_database(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations in :data:`MIGRATIONS_DIR` up to ``revision``."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    with _UPGRADE_LOCK:
        try:
            command.upgrade(cfg, revision)
        except sa.exc.OperationalError as exc:
            raise ServiceUnavailable(f"cannot migrate the database at {_safe(url)}: {exc.orig}") \
                from exc


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class StoreBase:
    """Connection handling shared by the repository mixins of :class:`concner.store.Store`."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        if migrate:
            upgrade_database(url)
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            self._write_bind = self.engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            self._snapshot_bind = self.engine
        else:
            self._write_bind = self.engine
            self._snapshot_bind = self.engine.execution_options(isolation_level="REPEATABLE READ")

    def __repr__(self) -> str:
        return f"Store({_safe(self.url)!r})"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One short write transaction: commits on success, rolls back on any error."""
        with (Session(self._write_bind, expire_on_commit=False) as session,
              self._translate_errors(), session.begin()):
            yield session

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Session]:
        """A read transaction; ``snapshot=True`` guarantees every query sees one state."""
        bind = self._snapshot_bind if snapshot else self.engine
        with (Session(bind, expire_on_commit=False) as session,
              self._translate_errors(), session.begin()):
            yield session

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.IntegrityError as exc:
            raise StoreConflict(f"the store refused a write: {exc.orig}") from exc
        except sa.exc.OperationalError as exc:
            raise ServiceUnavailable(f"database {_safe(self.url)} failed: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()
