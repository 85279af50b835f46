"""Schema upgrades keep the data: a store at revision 0001 with runs, metrics and
translation links upgrades to head without losing a row (SQLite batch migrations recreate
tables, which must not fire ON DELETE CASCADE)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from storekit import database_url

from concner.store import Store, upgrade_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    url, cleanup = database_url(request.param, tmp_path)
    yield url
    cleanup()


def _fill_0001(engine) -> None:
    """One project, a source and its translation linked, a finished run and its metric
    (ids from the database: PostgreSQL sequences must stay in step)."""
    now = "2026-11-27 09:00:00"
    with engine.begin() as c:
        def insert(sql: str, **values) -> int:
            return c.execute(sa.text(sql + " RETURNING id"), {"now": now, **values}).scalar()

        project = insert(
            "INSERT INTO projects (name, source_lang, target_langs, label_schema, encoder, "
            "training_config, created_at) VALUES ('p', 'en', '[\"de\"]', "
            "'{\"entity_types\": [\"PER\"]}', 'enc', '{}', :now)")
        ids = [insert(
            "INSERT INTO sentences (project_id, external_id, lang, role, split, tokens, "
            "offsets, text, meta, created_at) VALUES (:p, :ext, :lang, :role, 'train', "
            "'[\"a\"]', '[[0, 1]]', 'a', '{}', :now)", p=project, ext=ext, lang=lang, role=role)
            for ext, lang, role in (("s1", "en", "source"), ("s2", "de", "translation"))]
        insert("INSERT INTO translation_links (project_id, source_sentence_id, "
               "translation_sentence_id, backend, status, reason, created_at) "
               "VALUES (:p, :s, :t, 'file', 'ok', NULL, :now)", p=project, s=ids[0], t=ids[1])
        run = insert("INSERT INTO runs (project_id, kind, status, reason, cancel_requested, "
                     "requested_at) VALUES (:p, 'retrain', 'succeeded', 'on_demand', false, "
                     ":now)", p=project)
        insert("INSERT INTO metrics (run_id, language, split, precision, recall, f1, support, "
               "per_label, n_source, n_translated, n_target, created_at) VALUES "
               "(:r, 'de', 'dev', 0.5, 0.5, 0.5, 10, '{}', 1, 1, 0, :now)", r=run)


def test_upgrade_from_0001_keeps_runs_metrics_and_links(db_url):
    upgrade_database(db_url, "0001")
    store = Store(db_url, migrate=False)
    _fill_0001(store.engine)
    store.close()
    store = Store(db_url)  # migrates to head
    try:
        assert [m.f1 for m in store.metrics("p")] == [0.5]
        assert [r.status for r in store.runs("p")] == ["succeeded"]
        (old,) = store.runs("p")  # 0004: a run from before incremental updates
        assert (old.force_full, old.update_kind, store.trained_on(old.id)) == (False, None, None)
        with store.engine.connect() as c:
            links = c.execute(sa.text("SELECT lang FROM translation_links")).all()
        assert links == [("de",)]  # the language was filled in from the sentence
        # 0005: predictions carry the active-learning order
        assert "al_rank" in {c["name"] for c in sa.inspect(store.engine).get_columns("predictions")}
        run_id, created = store.request_run("p", kind="translate")
        assert created and store.get_run(run_id).kind == "translate"
    finally:
        store.close()
