"""Shards: a run's work cut into pieces that any worker may claim (issue 20).

Methods of :class:`concner.store.Store`. A job hands its work to shards
(:meth:`ShardRepository.hand_to_shards`); each worker then claims the next queued shard
atomically (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never wait
on each other's row; on SQLite the write transaction is ``BEGIN IMMEDIATE`` and the claim
is an ``UPDATE ... WHERE state = 'queued'`` whose row count says who won), runs it and
finishes it with its result. Finishing is guarded by state and owner: a second finish of
the same shard, or a finish by a worker that lost the shard, is refused, so no result is
counted twice. A shard whose worker died goes back to the queue
(:meth:`~ShardRepository.release_lost_shards`) until it has been claimed
:data:`MAX_ATTEMPTS` times; then it fails and so does its run (:class:`ShardFailed`).
When every shard is done, exactly one worker takes the completion
(:meth:`~ShardRepository.take_completion`: one ``shard_completions`` row per run).

State of a shard: ``queued`` -> ``claimed`` (owner, attempts + 1) -> ``done`` (result) or
back to ``queued`` (its worker died or stopped) or ``failed`` (attempts used up).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from concner.errors import ShardFailed
from concner.store.model_versions import Run, Shard, ShardCompletion, utcnow

#: claims of one shard before its run fails: a shard that killed two workers in a row is
#: more likely the cause than the victim (the lost work is one shard, so a third try is cheap)
MAX_ATTEMPTS = 3
#: ``runs.worker_id`` of a run whose work was handed to shards: no single worker owns it,
#: so the recovery of orphaned runs (:meth:`RunRepository.recover_orphaned_jobs`) leaves it
#: alone and the shards are recovered one by one instead
SHARDED_OWNER = "shards"


@dataclass(frozen=True)
class ClaimedShard:
    """A shard a worker holds: what to do (``payload``) and which attempt this is."""

    id: int
    run_id: int
    kind: str
    index: int
    payload: dict
    attempts: int


@dataclass(frozen=True)
class ReleasedShards:
    """What :meth:`ShardRepository.release_lost_shards` did: runs with shards back on the
    queue (enqueue their runner again) and shards given up (fail their runs)."""

    requeued_runs: list[int]
    failed: list[ShardFailed]


class ShardRepository:
    """Store methods for shards (mixed into :class:`concner.store.Store`)."""

    def hand_to_shards(self, run_id: int, kind: str, payloads: Sequence[dict]) -> int:
        """Cut running run ``run_id``'s work into one queued shard per payload (index =
        position) and hand the run over to them (``worker_id`` = :data:`SHARDED_OWNER`).
        Idempotent: a run that has shards already keeps them. Returns the shard count."""
        with self.write() as s:
            run = s.get(Run, run_id, with_for_update=True)
            have = s.scalar(sa.select(sa.func.count()).select_from(Shard)
                            .where(Shard.run_id == run_id))
            if not have:
                s.add_all(Shard(run_id=run_id, kind=kind, index=i, payload=dict(p),
                                state="queued", attempts=0) for i, p in enumerate(payloads))
                have = len(payloads)
            run.worker_id = SHARDED_OWNER
            return have

    def claim_shard(self, run_id: int, owner: str) -> ClaimedShard | None:
        """The next queued shard of ``run_id``, now held by ``owner``; None when none is
        queued, or the run is no longer running or was asked to stop."""
        with self.write() as s:
            run = s.get(Run, run_id)
            if run is None or run.status != "running" or run.cancel_requested:
                return None
            while True:
                pick = sa.select(Shard.id).where(Shard.run_id == run_id,
                                                 Shard.state == "queued") \
                    .order_by(Shard.index).limit(1)
                if self.dialect == "postgresql":
                    pick = pick.with_for_update(skip_locked=True)
                shard_id = s.scalar(pick)
                if shard_id is None:
                    return None
                won = s.execute(sa.update(Shard).where(
                    Shard.id == shard_id, Shard.state == "queued").values(
                    state="claimed", owner=owner, attempts=Shard.attempts + 1,
                    claimed_at=utcnow()).execution_options(synchronize_session=False))
                if won.rowcount == 1:
                    row = s.get(Shard, shard_id, populate_existing=True)
                    return ClaimedShard(row.id, row.run_id, row.kind, row.index,
                                        dict(row.payload), row.attempts)

    def finish_shard(self, shard_id: int, owner: str, result: dict) -> bool:
        """Record ``result`` and mark the shard done, if ``owner`` still holds it. False
        (nothing written) for a shard finished already or taken from ``owner``. The error
        of an earlier attempt stays (why the shard was retried)."""
        with self.write() as s:
            done = s.execute(sa.update(Shard).where(
                Shard.id == shard_id, Shard.state == "claimed", Shard.owner == owner).values(
                state="done", result=result, finished_at=utcnow())
                .execution_options(synchronize_session=False))
            return done.rowcount == 1

    def retry_shard(self, shard_id: int, owner: str, error: str) -> ShardFailed | None:
        """The shard ``owner`` holds raised ``error``: queue it again, or, when it has been
        claimed :data:`MAX_ATTEMPTS` times, fail it and return the error to fail its run
        with. None also when ``owner`` no longer holds it."""
        with self.write() as s:
            row = s.get(Shard, shard_id, with_for_update=True)
            if row is None or row.state != "claimed" or row.owner != owner:
                return None
            return self._give_back(row, error)

    def release_shard(self, shard_id: int, owner: str) -> bool:
        """Put back a shard ``owner`` holds without counting the attempt (the worker is
        stopping, not failing). False when ``owner`` no longer holds it."""
        with self.write() as s:
            back = s.execute(sa.update(Shard).where(
                Shard.id == shard_id, Shard.state == "claimed", Shard.owner == owner).values(
                state="queued", owner=None, claimed_at=None, attempts=Shard.attempts - 1)
                .execution_options(synchronize_session=False))
            return back.rowcount == 1

    def release_lost_shards(self, lost_owners: Collection[str]) -> ReleasedShards:
        """Shards claimed by a worker in ``lost_owners`` (dead, silent or stopped: it will
        not finish them) go back to the queue, or fail after :data:`MAX_ATTEMPTS` claims;
        a completion taken by such a worker of a run still running is given up so another
        worker takes it."""
        requeued: set[int] = set()
        failed: list[ShardFailed] = []
        if not lost_owners:
            return ReleasedShards([], [])
        lost = list(lost_owners)
        with self.write() as s:
            rows = s.scalars(sa.select(Shard).where(Shard.state == "claimed",
                                                    Shard.owner.in_(lost))
                             .order_by(Shard.id).with_for_update()).all()
            for row in rows:
                error = f"worker {row.owner} was lost while holding it (attempt {row.attempts})"
                gave_up = self._give_back(row, error)
                if gave_up is None:
                    requeued.add(row.run_id)
                else:
                    failed.append(gave_up)
            taken = s.scalars(sa.select(ShardCompletion).join(
                Run, Run.id == ShardCompletion.run_id).where(
                ShardCompletion.owner.in_(lost), Run.status == "running")).all()
            for completion in taken:
                requeued.add(completion.run_id)
                s.delete(completion)
        return ReleasedShards(sorted(requeued), failed)

    @staticmethod
    def _give_back(row: Shard, error: str) -> ShardFailed | None:
        row.error, row.owner, row.claimed_at = error, None, None
        if row.attempts < MAX_ATTEMPTS:
            row.state = "queued"
            return None
        row.state, row.finished_at = "failed", utcnow()
        return ShardFailed(row.run_id, row.id, row.index, row.kind, row.attempts, error)

    def take_completion(self, run_id: int, owner: str) -> str | None:
        """Decide who ends sharded run ``run_id``, once: ``"complete"`` when every shard is
        done, ``"cancel"`` when the run was asked to stop and no shard is held any more;
        None when it is not time yet or another worker took it (or the run ended)."""
        with self.write() as s:
            run = s.get(Run, run_id, with_for_update=True)  # serialises the takers
            if run is None or run.status != "running" or s.get(ShardCompletion, run_id):
                return None
            states = dict(s.execute(sa.select(Shard.state, sa.func.count()).where(
                Shard.run_id == run_id).group_by(Shard.state)).tuples().all())
            if run.cancel_requested and not states.get("claimed"):
                verdict = "cancel"
            elif all(state == "done" for state in states):  # no shard at all: nothing to do
                verdict = "complete"
            else:
                return None
            s.add(ShardCompletion(run_id=run_id, owner=owner))
            return verdict

    def shards(self, run_id: int) -> list[Shard]:
        with self.read() as s:
            return list(s.scalars(sa.select(Shard).where(Shard.run_id == run_id)
                                  .order_by(Shard.index)))

    def idle_sharded_runs(self, older_than: float = 0.0) -> list[int]:
        """Running sharded runs that wait for a worker: shards queued (or all done and
        nobody took the completion), none held, and neither the run started nor a shard
        was claimed or finished in the last ``older_than`` seconds (their runner's message
        may be lost: enqueueing it again is harmless, a runner with nothing to claim
        returns at once)."""
        cutoff = utcnow() - timedelta(seconds=older_than)
        with self.read() as s:
            rows = s.execute(sa.select(
                Shard.run_id, Shard.state, sa.func.count(), sa.func.max(Shard.claimed_at),
                sa.func.max(Shard.finished_at), Run.started_at)
                .join(Run, Run.id == Shard.run_id).where(
                Run.status == "running", Run.worker_id == SHARDED_OWNER,
                ~sa.exists().where(ShardCompletion.run_id == Shard.run_id))
                .group_by(Shard.run_id, Shard.state, Run.started_at)).all()
        by_run: dict[int, dict] = {}
        for run_id, state, n, claimed_at, finished_at, started_at in rows:
            seen = by_run.setdefault(run_id, {"states": {}, "last": None})
            seen["states"][state] = n
            for t in (claimed_at, finished_at, started_at):
                if t is not None and (seen["last"] is None or t > seen["last"]):
                    seen["last"] = t
        return sorted(run_id for run_id, seen in by_run.items()
                      if not seen["states"].get("claimed")
                      and (seen["states"].get("queued") or set(seen["states"]) == {"done"})
                      and (seen["last"] is None or seen["last"] <= cutoff))
