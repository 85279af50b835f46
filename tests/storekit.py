"""Helpers for the store / worker tests: synthetic labelled data over the tiny vocabulary,
a project with a tiny encoder and a config that trains in about a second."""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest

from concner.sentence import Sentence

PERSONS = [["John", "Smith"], ["Mary"], ["John"], ["Mary", "Smith"]]
ORGS = [["Google"], ["Microsoft"], ["United", "Nations"]]
LOCS = [["Paris"], ["London"], ["Berlin"], ["New", "York"]]
TEMPLATES = [
    ["{PER}", "visited", "{LOC}"],
    ["{PER}", "works", "for", "{ORG}", "in", "{LOC}"],
    ["the", "company", "{ORG}", "is", "in", "{LOC}"],
    ["{PER}", "lives", "in", "the", "city", "of", "{LOC}"],
    ["{PER}", "was", "a", "person", "at", "{ORG}"],
]
FILLERS = {"PER": PERSONS, "ORG": ORGS, "LOC": LOCS}

#: a training config that runs in about a second on the tiny encoder
TINY_TRAINING = {
    "training": {"epochs": 1, "kd_epochs": 0, "batch_size": 8, "learning_rate": 0.003,
                 "head_learning_rate": 0.01, "num_threads": 1, "device": "cpu",
                 "warmup_ratio": 0.0},
    "loss": {"kd": False, "use_translation": True},
    "model": {"max_length": 32, "window_stride": 4, "projection_dim": 16},
}


def make_sentence(rng: random.Random, sid: str, lang: str, labelled: bool = True,
                  meta: dict | None = None) -> Sentence:
    tokens: list[str] = []
    tags: list[str] = []
    for slot in rng.choice(TEMPLATES):
        if slot.startswith("{"):
            label = slot[1:-1]
            words = rng.choice(FILLERS[label])
            tokens += words
            tags += [f"B-{label}"] + [f"I-{label}"] * (len(words) - 1)
        else:
            tokens.append(slot)
            tags.append("O")
    return Sentence.from_tokens(sid, lang, tokens, tags if labelled else None, meta=meta)


def make_sentences(prefix: str, n: int, lang: str, *, seed: int, labelled: bool = True,
                   meta_fn=None) -> list[Sentence]:
    rng = random.Random(seed)
    return [make_sentence(rng, f"{prefix}{i}", lang, labelled, meta_fn(i) if meta_fn else None)
            for i in range(n)]


def tiny_encoder(tmp_path: Path) -> str:
    from tiny import make_tiny_encoder_dir

    return str(make_tiny_encoder_dir(Path(tmp_path) / "encoder"))


def make_project(store, name: str, encoder: str, *, n_source: int = 40, n_dev: int = 20,
                 n_pool: int = 20, training: dict | None = None, targets=("de",),
                 n_source_pool: int = 0) -> None:
    """A project with gold source sentences (and ``n_source_pool`` unlabelled ones), their
    projected translations (ok/repaired/failed), unlabelled target pool and gold dev per
    target language."""
    store.create_project(name, source_lang="en", target_langs=list(targets),
                         entity_types=["PER", "ORG", "LOC"], encoder=encoder,
                         training_config=training or TINY_TRAINING)
    store.import_sentences(name, make_sentences("src", n_source, "en", seed=1),
                           role="source", split="train")
    if n_source_pool:
        store.import_sentences(name, make_sentences("src-pool-", n_source_pool, "en", seed=3,
                                                    labelled=False), role="source", split="pool")
    statuses = ["ok", "repaired", "failed", "ok"]
    for k, lang in enumerate(targets):
        store.import_sentences(name, make_sentences(
            f"tr-{lang}-", n_source, lang, seed=2 + k,
            meta_fn=lambda i: {"source_id": f"src{i}", "projection_status": statuses[i % 4],
                               "backend": "dictionary"}), role="translation", split="train")
        store.import_sentences(name, make_sentences(f"dev-{lang}-", n_dev, lang, seed=10 + k),
                               role="target", split="dev")
        store.import_sentences(name, make_sentences(f"pool-{lang}-", n_pool, lang, seed=20 + k,
                                                    labelled=False), role="target", split="pool")


def service_env(tmp_path: Path, db_url: str, **extra: str) -> dict:
    """Environment for a worker subprocess using this test's store, queue and checkpoints."""
    env = dict(os.environ)
    env.update({
        "CONCNER_SERVICES__DATABASE_URL": db_url,
        "CONCNER_SERVICES__QUEUE_PATH": str(Path(tmp_path) / "queue.db"),
        "CONCNER_SERVICES__CHECKPOINTS": str(Path(tmp_path) / "models"),
        "CONCNER_SERVICES__HEARTBEAT_SECONDS": "0.5",
        "CONCNER_SERVICES__LOCK_STALE_SECONDS": "3",
        "CONCNER_SERVICES__WORKER_THREADS": "1",
        "CONCNER_LOG_LEVEL": "INFO",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    })
    env.pop("CONCNER_REDIS_URL", None)
    env.pop("CONCNER_CONFIG", None)
    env.update(extra)
    return env


# -- database fixtures ----------------------------------------------------------------
POSTGRES_ENV = "CONCNER_TEST_POSTGRES_URL"


def postgres_or_skip() -> str:
    """The PostgreSQL server URL from the environment; skip (or fail under
    CONCNER_REQUIRE_SERVICES=1) when it is not set."""
    import pytest

    url = os.environ.get(POSTGRES_ENV)
    if not url:
        reason = (f"{POSTGRES_ENV} is not set (start one with scripts/start_postgres.sh DIR and "
                  "export the URL it prints)")
        if os.environ.get("CONCNER_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def fresh_postgres_database(server_url: str):
    """Create an empty database next to ``server_url``'s; returns ``(url, drop)``."""
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    base = make_url(server_url)
    name = f"concner_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def database_url(kind: str, tmp_path: Path):
    """``(url, cleanup)`` of an empty database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        return f"sqlite:///{Path(tmp_path) / 'store.db'}", lambda: None
    return fresh_postgres_database(postgres_or_skip())


#: the two databases the store tests run on (PostgreSQL only where one is configured)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@contextlib.contextmanager
def open_store(kind: str, tmp_path: Path):
    """A migrated :class:`concner.store.Store` on an empty database of ``kind``; closed and
    its database dropped on exit."""
    from concner.store import Store

    url, cleanup = database_url(kind, tmp_path)
    st = Store(url)
    try:
        yield st
    finally:
        st.close()
        cleanup()


def publish_evaluated(store, registry, name: str, bundle, f1_by_lang: dict[str, float], *,
                      mean: float | None = None, label_counts: dict | None = None,
                      per_label: dict | None = None):
    """Publish ``bundle`` as the model of a finished retrain of ``name`` with dev metrics
    per language (F1 fractions), as the runner does but without training; the mean defaults
    to the languages' mean. Returns the registry's ``Published``."""
    run_id, _ = store.request_run(name)
    assert store.acquire_retrain(run_id, "test")
    store.record_snapshot(run_id, label_counts=label_counts or {}, config={}, seed=0)
    if mean is None and f1_by_lang:
        mean = sum(f1_by_lang.values()) / len(f1_by_lang)
    pub = registry.publish(name, bundle, run_id=run_id, mean_f1=mean, f1_by_lang=f1_by_lang)
    store.add_metrics(run_id, "dev", {
        lang: {"precision": f1, "recall": f1, "f1": f1, "support": 10,
               "per_label": (per_label or {}).get(lang, {})}
        for lang, f1 in f1_by_lang.items()}, model_version_id=pub.version.id)
    decided = "promoted" if pub.promoted else "not promoted"
    store.update_progress(run_id, {"stage": "done", "promotion": pub.reason,
                                   "log": [f"model v{pub.version.version}: {decided}"]})
    store.finish_run(run_id, "succeeded", model_version_id=pub.version.id)
    store.release_retrain(run_id)
    return pub


def env_store(tmp_path: Path, monkeypatch):
    """A fresh SQLite store that the CLI and ``concner.jobs.queue`` (its ``config()``) also use,
    through the ``CONCNER_*`` environment of this test."""
    from concner.config import load_config
    from concner.jobs import queue as tasks
    from concner.store import Store

    url = f"sqlite:///{Path(tmp_path) / 'store.db'}"
    monkeypatch.setenv("CONCNER_SERVICES__DATABASE_URL", url)
    monkeypatch.setenv("CONCNER_SERVICES__CHECKPOINTS", str(Path(tmp_path) / "models"))
    monkeypatch.delenv("CONCNER_CONFIG", raising=False)
    config = load_config()
    monkeypatch.setattr(tasks, "config", lambda: config)
    return Store(url)
