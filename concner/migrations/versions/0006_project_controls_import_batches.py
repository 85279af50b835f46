"""Project controls and undoable imports (issue 17).

- ``projects.auto_retrain``: whether new labels queue a retrain by themselves (default on,
  as before this revision).
- ``projects.pinned_version_id``: a model version the user pinned; while set, promotion
  never replaces it as the active model (rollback = pin an older version).
- ``import_batches``: one row per import (file name, role, split, language, count), and
  ``sentences.import_batch_id`` naming the import that brought each sentence, so one import
  can be shown and deleted as a unit. Sentences stored before this revision have none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('auto_retrain', sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column('pinned_version_id', sa.Integer(), nullable=True))
    op.create_table(
        'import_batches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('source_name', sa.String(length=1000), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('split', sa.String(length=16), nullable=False),
        sa.Column('lang', sa.String(length=16), nullable=True),
        sa.Column('n_sentences', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'],
                                name=op.f('fk_import_batches_project_id_projects'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batches')),
    )
    with op.batch_alter_table('sentences') as batch:
        batch.add_column(sa.Column('import_batch_id', sa.Integer(), nullable=True))
        batch.create_index(batch.f('ix_sentences_import_batch_id'), ['import_batch_id'])
        batch.create_foreign_key(batch.f('fk_sentences_import_batch_id_import_batches'),
                                 'import_batches', ['import_batch_id'], ['id'],
                                 ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('sentences') as batch:
        batch.drop_constraint(batch.f('fk_sentences_import_batch_id_import_batches'),
                              type_='foreignkey')
        batch.drop_index(batch.f('ix_sentences_import_batch_id'))
        batch.drop_column('import_batch_id')
    op.drop_table('import_batches')
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('pinned_version_id')
        batch.drop_column('auto_retrain')
