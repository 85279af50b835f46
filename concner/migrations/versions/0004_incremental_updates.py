"""Incremental model updates: a retrain records whether it was a full or an incremental
update and why, the model it warm-started from, how many incremental updates in a row its
model went through, how many new and replayed labelled sentences it trained on, and which
labelled sentences (with their label versions) its model has learnt from; a request can
force a full retrain (``force_full``). Existing runs keep NULLs (their models count as
"trained on unknown labels": the next retrain is a full one).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UPDATE_KINDS = "update_kind IN ('full', 'incremental')"


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('force_full', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('update_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('update_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('base_model_version_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('incremental_depth', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('n_new_labels', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('n_replay', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trained_on', sa.JSON(none_as_null=True), nullable=True))
        batch_op.create_check_constraint(op.f('ck_runs_update_kind'), sa.text(UPDATE_KINDS))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_runs_update_kind'), type_='check')
        for column in ('trained_on', 'n_replay', 'n_new_labels', 'incremental_depth',
                       'base_model_version_id', 'update_reason', 'update_kind', 'force_full'):
            batch_op.drop_column(column)
