"""What each stored prediction was predicted from: ``predictions.input_hash`` (16 hex
digits of the sentence's language, tokens and text), nullable. A pool prediction of the
same model version and strategy reuses a stored row (no new forward pass) only while its
sentence still hashes to it, so only new or changed sentences are predicted again.
Predictions stored before this revision have none and are predicted again once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.add_column(sa.Column('input_hash', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.drop_column('input_hash')
