"""SQLAlchemy 2.x ORM models of the project store (one schema for SQLite and PostgreSQL).

Timestamps are timezone-aware UTC (:class:`UTCDateTime` re-attaches UTC on SQLite, which
stores naive values). Enumerations are strings guarded by CHECK constraints so that the
same migration runs on both databases. Nothing here opens a connection; see
:mod:`concner.store.db`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("source", "translation", "target")
SPLITS = ("train", "dev", "pool")
ORIGINS = ("import", "argilla", "correction")
LINK_STATUSES = ("ok", "repaired", "failed")
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
RUN_KINDS = ("retrain", "evaluate", "predict", "translate")
#: how a retrain trained (see concner/jobs/incremental.py)
UPDATE_KINDS = ("full", "incremental")
ACTIVE_RUN_STATUSES = ("queued", "running")
#: a shard of a run's work (concner/store/shards.py): waiting, held by a worker, finished,
#: or given up after its attempts ran out
SHARD_STATES = ("queued", "claimed", "done", "failed")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """``DateTime(timezone=True)`` that always hands back aware UTC datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(timezone.utc)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {datetime: UTCDateTime, dict[str, Any]: sa.JSON,
                                     list[Any]: sa.JSON}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    source_lang: Mapped[str] = mapped_column(sa.String(16))
    target_langs: Mapped[list[Any]] = mapped_column(default=list)
    label_schema: Mapped[dict[str, Any]] = mapped_column()
    encoder: Mapped[str] = mapped_column(sa.String(1000))
    training_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: whether new labels queue a retrain by themselves (the Overview's switch)
    auto_retrain: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    #: a pinned model version: promotion never replaces it while set (rollback = pin)
    pinned_version_id: Mapped[int | None] = mapped_column()


class ImportBatch(Base):
    """One import of sentences (a file or a paste), so it can be shown and undone as a unit."""

    __tablename__ = "import_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    source_name: Mapped[str] = mapped_column(sa.String(1000))
    role: Mapped[str] = mapped_column(sa.String(16))
    split: Mapped[str] = mapped_column(sa.String(16))
    lang: Mapped[str | None] = mapped_column(sa.String(16))
    n_sentences: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SentenceRow(Base):
    __tablename__ = "sentences"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "external_id"),
        sa.Index(None, "project_id", "role", "split"),
        _one_of("role", ROLES, "role"),
        _one_of("split", SPLITS, "split"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(sa.String(500))
    lang: Mapped[str] = mapped_column(sa.String(16))
    role: Mapped[str] = mapped_column(sa.String(16))
    split: Mapped[str] = mapped_column(sa.String(16))
    tokens: Mapped[list[Any]] = mapped_column()
    #: per-token (start, end) character offsets into ``text``
    offsets: Mapped[list[Any]] = mapped_column()
    text: Mapped[str] = mapped_column(sa.Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the import that brought this sentence (none for sentences stored before revision 0006)
    import_batch_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("import_batches.id", ondelete="SET NULL"), index=True)


class Annotation(Base):
    """One version of a sentence's labels; versions are never updated or deleted."""

    __tablename__ = "annotations"
    __table_args__ = (_one_of("origin", ORIGINS, "origin"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sentence_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sentences.id", ondelete="CASCADE"), index=True)
    tags: Mapped[list[Any]] = mapped_column()
    author: Mapped[str] = mapped_column(sa.String(200))
    origin: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TranslationLink(Base):
    __tablename__ = "translation_links"
    __table_args__ = (
        sa.UniqueConstraint("translation_sentence_id"),
        _one_of("status", LINK_STATUSES, "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    source_sentence_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sentences.id", ondelete="CASCADE"), index=True)
    #: None for a failed projection made by a translate run (no sentence is kept)
    translation_sentence_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sentences.id", ondelete="CASCADE"))
    #: the translation's language (also known when the projection failed)
    lang: Mapped[str | None] = mapped_column(sa.String(16))
    backend: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        sa.Index(None, "project_id", "kind", "status"),
        _one_of("status", RUN_STATUSES, "status"),
        _one_of("kind", RUN_KINDS, "kind"),
        _one_of("update_kind", UPDATE_KINDS, "update_kind"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(16), default="retrain")
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    #: why the run exists: "on_demand", "new_labels", "recovery", "shutdown"
    reason: Mapped[str] = mapped_column(sa.String(32), default="on_demand")
    config: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    seed: Mapped[int | None] = mapped_column()
    #: {"source", "translated", "target", "annotations", "target_by_lang": {...}}
    label_counts: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    #: {"stage", "epoch", "step", "total", "loss", "log": [last lines]}
    progress: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(sa.Text)
    worker_id: Mapped[str | None] = mapped_column(sa.String(200))
    retry_of: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))
    #: the model version an ``evaluate``/``predict`` run used, or a retrain produced (no
    #: foreign key: runs and model versions refer to each other)
    model_version_id: Mapped[int | None] = mapped_column()
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    # -- retrains: full or incremental (concner/jobs/incremental.py) ---------------------------
    #: a full retrain was asked for (CLI --full, the app, the job argument); kept by the
    #: follow-up a shutdown or a dead worker queues
    force_full: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: "full" or "incremental", decided when the run read its snapshot (None before)
    update_kind: Mapped[str | None] = mapped_column(sa.String(16))
    #: why the plan chose that kind, in words
    update_reason: Mapped[str | None] = mapped_column(sa.Text)
    #: the model version an incremental update warm-started from (no foreign key, as above)
    base_model_version_id: Mapped[int | None] = mapped_column()
    #: incremental updates in a row the resulting model went through (0 = full)
    incremental_depth: Mapped[int | None] = mapped_column()
    #: labelled sentences trained on in this run: new ones and the replay sample
    n_new_labels: Mapped[int | None] = mapped_column()
    n_replay: Mapped[int | None] = mapped_column()
    #: ``{sentence id: label version (annotation id)}`` of every labelled training sentence
    #: the resulting model has learnt from (the next plan's "new" labels are the others);
    #: deferred: loaded by :meth:`RunRepository.trained_on` only
    trained_on: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True),
                                                              deferred=True)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (sa.UniqueConstraint("run_id", "language", "split"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("model_versions.id"))
    language: Mapped[str] = mapped_column(sa.String(16))
    split: Mapped[str] = mapped_column(sa.String(16))
    precision: Mapped[float] = mapped_column()
    recall: Mapped[float] = mapped_column()
    f1: Mapped[float] = mapped_column()
    support: Mapped[int] = mapped_column()
    per_label: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: label counts the run trained on (copied from the run for the F1-vs-labels curve)
    n_source: Mapped[int] = mapped_column(default=0)
    n_translated: Mapped[int] = mapped_column(default=0)
    n_target: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "version"),
        # at most one active model per project
        sa.Index("uq_model_versions_one_active", "project_id", unique=True,
                 sqlite_where=sa.text("active"), postgresql_where=sa.text("active")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))
    version: Mapped[int] = mapped_column()
    path: Mapped[str] = mapped_column(sa.String(2000))
    mean_f1: Mapped[float | None] = mapped_column()
    promoted: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: set when the checkpoint files were pruned (the row stays for history)
    deleted_at: Mapped[datetime | None] = mapped_column()


def ask_order_key(al_rank: int | None, al_score: float | None, uncertainty: float) -> tuple:
    """Sort key of a stored prediction, smallest = ask a person first: by the strategy's
    order (``al_rank``) when it has one, else by its score, highest first, else (never
    scored) by uncertainty, highest first. Break remaining ties by sentence id yourself."""
    if al_rank is not None:
        return (0, al_rank)
    if al_score is not None:
        return (1, -al_score)
    return (2, -uncertainty)


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (sa.UniqueConstraint("sentence_id", "model_version_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sentence_id: Mapped[int] = mapped_column(sa.ForeignKey("sentences.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    tags: Mapped[list[Any]] = mapped_column()
    spans: Mapped[list[Any]] = mapped_column()
    uncertainty: Mapped[float] = mapped_column()
    #: active-learning score of ``al_strategy`` (higher = ask a person first), or None
    al_score: Mapped[float | None] = mapped_column()
    al_strategy: Mapped[str | None] = mapped_column(sa.String(32))
    #: position in ``al_strategy``'s order to ask people (1 = first), or None; differs from
    #: the ``al_score`` order for the diversity strategy, which picks whole batches
    al_rank: Mapped[int | None] = mapped_column()
    #: :func:`concner.store.pool_stream.input_hash` of the sentence this was predicted from,
    #: or None (stored before revision 0007): a pool prediction of the same model version
    #: and strategy reuses the row only while the sentence still hashes to it
    input_hash: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncState(Base):
    __tablename__ = "sync_state"
    __table_args__ = (sa.UniqueConstraint("project_id", "dataset"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    dataset: Mapped[str] = mapped_column(sa.String(200))
    last_sync_at: Mapped[datetime | None] = mapped_column()
    cursor: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(32), default="never")
    message: Mapped[str | None] = mapped_column(sa.Text)


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"
    worker_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(200))
    pid: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(32), default="running")
    current_run_id: Mapped[int | None] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class RetrainLock(Base):
    """At most one retrain per project: the holder's run id and heartbeat, plus the one
    queued follow-up run that later requests coalesce into."""

    __tablename__ = "retrain_locks"
    project_id: Mapped[int] = mapped_column(
        sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))
    owner: Mapped[str | None] = mapped_column(sa.String(200))
    acquired_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    queued_run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))



class Shard(Base):
    """One piece of a run's work that any worker may claim (concner/store/shards.py):
    ``payload`` says what to do, ``result`` what came out (both JSON)."""

    __tablename__ = "shards"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "index"),
        sa.Index(None, "run_id", "state"),
        _one_of("state", SHARD_STATES, "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    #: the work kind (a key of concner.jobs.shards.WORK)
    kind: Mapped[str] = mapped_column(sa.String(32))
    index: Mapped[int] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(sa.String(16), default="queued")
    #: the worker holding (or that finished) the shard
    owner: Mapped[str | None] = mapped_column(sa.String(200))
    #: claims so far (a claim by a worker that died counts)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(sa.Text)


class ShardCompletion(Base):
    """The one worker that runs a sharded run's completion (its row is the guard)."""

    __tablename__ = "shard_completions"
    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(200))
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
