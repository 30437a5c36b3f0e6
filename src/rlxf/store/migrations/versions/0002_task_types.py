"""judgements of the new task types: a ranking, and the text of an edit or a critique

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ranking', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.drop_column('text')
        batch_op.drop_column('ranking')
