"""Active-learning score per stored prediction: ``al_score`` (higher = ask a person first)
and ``al_strategy`` (the strategy that gave it), both nullable (predictions stored before
this revision, or scored by no strategy, have none and are ranked by uncertainty).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.add_column(sa.Column('al_score', sa.Double(), nullable=True))
        batch.add_column(sa.Column('al_strategy', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.drop_column('al_strategy')
        batch.drop_column('al_score')
