"""The unlabelled pools read chunk by chunk, and the predictions of a pool written the same
way (what the ``predict_pool`` job needs to rank 100,000 sentences without holding them).

:meth:`PoolRepository.pool_chunks` yields a pool's unlabelled sentences in id order (the
order :func:`concner.store.snapshot.take_snapshot` gives them), at most ``chunk`` per read;
:meth:`PoolRepository.reusable_predictions` finds the stored rows a pool prediction of the
same model version and strategy can keep (the sentence still hashes as it did:
:func:`input_hash`); :meth:`PoolRepository.save_ranks` writes the order of a whole pool in
one bulk UPDATE.

Methods of :class:`concner.store.Store` (a mixin over :class:`concner.store.db.StoreBase`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from concner.errors import ConfigError
from concner.sentence import Sentence
from concner.store.model_versions import Annotation, PredictionRow, SentenceRow
from concner.store.projects import row_to_sentence

_CHUNK = 500
POOL_ROLES = ("target", "source")


def input_hash(sentence: Sentence) -> str:
    """16 hex digits of what a prediction of ``sentence`` depends on (language, tokens,
    text): a sentence whose hash changed must be predicted again."""
    payload = json.dumps([sentence.lang, list(sentence.tokens), sentence.text],
                         ensure_ascii=False)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredScore:
    """What ranking needs of a reusable stored prediction: its score (None when the
    strategy scores by position) and whether the sentence has words to annotate."""

    al_score: float | None
    n_words: int


def _check_whole(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"the {what} must be a whole number >= 1, got {value!r}")


class PoolRepository:
    """Store methods for streaming a pool (mixed into :class:`concner.store.Store`)."""

    def pool_bound(self, name: str) -> int:
        """The newest sentence id of project ``name`` now: a pool prediction reads no
        sentence added after it started (0 for a project without sentences)."""
        with self.read() as s:
            project = self.get_project(name, s)
            return int(s.scalar(sa.select(sa.func.coalesce(sa.func.max(SentenceRow.id), 0))
                                .where(SentenceRow.project_id == project.id)))

    @staticmethod
    def _pool_where(project_id: int, role: str, upto: int) -> tuple:
        if role not in POOL_ROLES:
            raise ConfigError(f"a pool is one of {', '.join(POOL_ROLES)}, got {role!r}")
        labelled = sa.exists().where(Annotation.sentence_id == SentenceRow.id)
        return (SentenceRow.project_id == project_id, SentenceRow.role == role,
                SentenceRow.split != "dev", SentenceRow.id <= upto, ~labelled)

    def pool_size(self, name: str, role: str, upto: int) -> int:
        """How many unlabelled ``role`` sentences (outside dev, id <= ``upto``) there are."""
        with self.read() as s:
            project = self.get_project(name, s)
            return int(s.scalar(sa.select(sa.func.count(SentenceRow.id))
                                .where(*self._pool_where(project.id, role, upto))))

    def pool_boundaries(self, name: str, role: str, every: int, upto: int) -> list[int]:
        """The row ids that end the pool's id ranges of ``every`` sentences: the id of every
        ``every``-th unlabelled ``role`` sentence (outside dev, id <= ``upto``) in id order,
        and the last one's; the ranges ``(0, b1], (b1, b2], ...`` hold the whole pool, the
        last one fewer when ``every`` does not divide it. One query, which returns only the
        ``ceil(N / every)`` ends ([] for an empty pool)."""
        _check_whole("pool range", every)
        with self.read() as s:
            project = self.get_project(name, s)
            ranked = sa.select(
                SentenceRow.id.label("id"),
                sa.func.row_number().over(order_by=SentenceRow.id).label("position"),
                sa.func.count().over().label("size"),
            ).where(*self._pool_where(project.id, role, upto)).subquery()
            return [int(i) for i in s.scalars(
                sa.select(ranked.c.id).where(sa.or_(ranked.c.position % every == 0,
                                                    ranked.c.position == ranked.c.size))
                .order_by(ranked.c.id))]

    def pool_chunks(self, name: str, role: str, chunk: int, upto: int, *, after: int = 0
                    ) -> Iterator[list[Sentence]]:
        """The unlabelled ``role`` sentences of ``name`` outside dev with ids in ``(after,
        upto]``, in id order, ``chunk`` at a time (one short read each, keyed on the last
        id, so memory holds one chunk; a sentence labelled meanwhile leaves the pool)."""
        _check_whole("pool chunk", chunk)
        while True:
            with self.read() as s:
                project = self.get_project(name, s)
                rows = list(s.scalars(sa.select(SentenceRow).where(
                    *self._pool_where(project.id, role, upto), SentenceRow.id > after)
                    .order_by(SentenceRow.id).limit(chunk)))
                sentences = [row_to_sentence(r) for r in rows]
            if not sentences:
                return
            yield sentences
            if len(sentences) < chunk:
                return
            after = sentences[-1].meta["db_id"]

    def sentences_by_id(self, name: str, ids: Sequence[int]) -> list[Sentence]:
        """The sentences of ``name`` with these row ids, in the order given (at most a few
        thousand: ask in chunks)."""
        with self.read() as s:
            project = self.get_project(name, s)
            rows = {r.id: r for r in s.scalars(sa.select(SentenceRow).where(
                SentenceRow.project_id == project.id, SentenceRow.id.in_(list(ids))))}
        return [row_to_sentence(rows[i]) for i in ids if i in rows]

    def reusable_predictions(self, model_version_id: int, strategy: str,
                             sentences: Sequence[Sentence]) -> dict[int, StoredScore]:
        """Sentence row id -> :class:`StoredScore` of every sentence in ``sentences`` that
        ``model_version_id`` already predicted and ``strategy`` scored from the same input
        (:func:`input_hash`); the others need a new prediction."""
        wanted = {x.meta["db_id"]: input_hash(x) for x in sentences}
        ids = list(wanted)
        found: dict[int, StoredScore] = {}
        with self.read() as s:
            for i in range(0, len(ids), _CHUNK):
                for sid, tags, score, stored_hash in s.execute(sa.select(
                        PredictionRow.sentence_id, PredictionRow.tags, PredictionRow.al_score,
                        PredictionRow.input_hash).where(
                        PredictionRow.model_version_id == model_version_id,
                        PredictionRow.al_strategy == strategy,
                        PredictionRow.sentence_id.in_(ids[i:i + _CHUNK]))):
                    if stored_hash is not None and stored_hash == wanted[sid]:
                        found[sid] = StoredScore(score, len(tags))
        return found

    def save_ranks(self, model_version_id: int, ranks: Sequence[tuple[int, int, float | None]],
                   *, scores: bool = False) -> int:
        """Set ``al_rank`` (and with ``scores``, ``al_score`` too) of this model version's
        predictions from ``(sentence row id, rank, score)``, in one transaction of
        ``WITH given AS (VALUES ...) UPDATE ... FROM given`` statements of :data:`_CHUNK` rows (one round trip
        per 500 rows on PostgreSQL and SQLite >= 3.33 alike)."""
        table = PredictionRow.__table__
        columns = [sa.column("sid", sa.Integer), sa.column("rnk", sa.Integer)]
        if scores:
            columns.append(sa.column("score", sa.Float))
        with self.write() as s:
            for start in range(0, len(ranks), _CHUNK):
                part = [(int(sid), int(rank), *((None if score is None else float(score),)
                                                 if scores else ()))
                        for sid, rank, score in ranks[start:start + _CHUNK]]
                given = sa.values(*columns, name="given").data(part).cte("given")
                values = {"al_rank": given.c.rnk}
                if scores:
                    values["al_score"] = given.c.score
                s.execute(sa.update(table).where(table.c.model_version_id == model_version_id,
                                                 table.c.sentence_id == given.c.sid)
                          .values(**values))
        return len(ranks)
