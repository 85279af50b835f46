"""Sharded runs (issue 20): a run's work split into shards that any worker claims.

- ``shards``: one row per piece of a run's work (kind, index, JSON payload), its state
  (queued / claimed / done / failed), the worker holding it, attempts, times, JSON result.
- ``shard_completions``: the one worker that runs a sharded run's completion (the row's
  primary key is the guard).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shards',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('index', sa.Integer(), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('result', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('queued', 'claimed', 'done', 'failed')",
                           name=op.f('ck_shards_state')),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_shards_run_id_runs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shards')),
        sa.UniqueConstraint('run_id', 'index', name=op.f('uq_shards_run_id_index')),
    )
    op.create_index(op.f('ix_shards_run_id_state'), 'shards', ['run_id', 'state'])
    op.create_table(
        'shard_completions',
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'],
                                name=op.f('fk_shard_completions_run_id_runs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id', name=op.f('pk_shard_completions')),
    )


def downgrade() -> None:
    op.drop_table('shard_completions')
    op.drop_index(op.f('ix_shards_run_id_state'), table_name='shards')
    op.drop_table('shards')
