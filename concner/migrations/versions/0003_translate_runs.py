"""Queued translation runs: run kind ``translate``; translation links know their language
and may have no sentence (a failed projection made by a translate run keeps only the link,
its status and reason).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OLD_KINDS = "kind IN ('retrain', 'evaluate', 'predict')"
NEW_KINDS = "kind IN ('retrain', 'evaluate', 'predict', 'translate')"


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_runs_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_runs_kind'), sa.text(NEW_KINDS))
    with op.batch_alter_table('translation_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lang', sa.String(length=16), nullable=True))
        batch_op.alter_column('translation_sentence_id', existing_type=sa.Integer(),
                              nullable=True)
    op.execute("UPDATE translation_links SET lang = (SELECT sentences.lang FROM sentences "
               "WHERE sentences.id = translation_links.translation_sentence_id)")


def downgrade() -> None:
    op.execute("DELETE FROM translation_links WHERE translation_sentence_id IS NULL")
    op.execute("DELETE FROM runs WHERE kind = 'translate'")
    with op.batch_alter_table('translation_links', schema=None) as batch_op:
        batch_op.alter_column('translation_sentence_id', existing_type=sa.Integer(),
                              nullable=False)
        batch_op.drop_column('lang')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_runs_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_runs_kind'), sa.text(OLD_KINDS))
