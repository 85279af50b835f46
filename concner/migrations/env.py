"""Alembic environment of the ConCNER store (run by :func:`concner.store.upgrade_database`).

The database URL comes from ``config.attributes["url"]`` (or the ``sqlalchemy.url`` option
when Alembic's own command line is used). On PostgreSQL an advisory lock serialises
concurrent upgrades (the app and a worker starting together); on SQLite the migration
runs in a ``BEGIN IMMEDIATE`` transaction for the same reason.
"""

from __future__ import annotations

from alembic import context

from concner.store.db import make_engine
from concner.store.model_versions import Base

MIGRATION_LOCK_KEY = 0x434E4552  # "CNER"

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass it to upgrade_database(url)")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_foreign_keys(connection, *, on: bool) -> None:
    """Switch SQLite foreign keys (outside any transaction, where the pragma works).

    A batch migration recreates a table (copy, DROP, rename); with foreign keys on, the DROP
    deletes every row first and fires ``ON DELETE CASCADE`` in the referring tables (e.g.
    recreating ``runs`` would empty ``metrics``), so SQLite migrations run with them off and
    check the result with :func:`_sqlite_check_foreign_keys` before committing.
    """
    connection.connection.driver_connection.execute(
        f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _sqlite_check_foreign_keys(connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left {len(broken)} rows with broken foreign keys, e.g. "
                           f"{broken[0]}; the migration is rolled back")


def run_migrations_online() -> None:
    engine = make_engine(_url())
    try:
        bind = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with bind.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                _sqlite_foreign_keys(connection, on=False)
            try:
                context.configure(connection=connection, target_metadata=target_metadata,
                                  render_as_batch=sqlite)
                with context.begin_transaction():
                    if connection.dialect.name == "postgresql":
                        connection.exec_driver_sql(
                            f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
                    context.run_migrations()
                    if sqlite:
                        _sqlite_check_foreign_keys(connection)
            finally:
                if sqlite:
                    _sqlite_foreign_keys(connection, on=True)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
