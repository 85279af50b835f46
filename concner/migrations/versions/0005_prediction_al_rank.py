"""Active-learning order per stored prediction: ``al_rank`` (1 = ask a person first),
nullable. Scores alone cannot carry the diversity strategy's order (it picks whole batches,
so its order is not the score order). Predictions stored before this revision have none
and keep being ranked by ``al_score``, then uncertainty.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.add_column(sa.Column('al_rank', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.drop_column('al_rank')
