"""curation: tied rankings (judgements.ties) and curators' decisions (the review queue)

Revision ID: 0004_curation
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_curation'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ties', sa.JSON(), nullable=True))
    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('curator_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('accepted_from', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=100), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=False),
    sa.Column('choice', sa.Integer(), nullable=True),
    sa.Column('tie', sa.Boolean(), nullable=False),
    sa.Column('strength', sa.Integer(), nullable=True),
    sa.Column('ratings', sa.JSON(), nullable=True),
    sa.Column('ranking', sa.JSON(), nullable=True),
    sa.Column('ties', sa.JSON(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['accepted_from'], ['annotators.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['curator_id'], ['annotators.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_decisions_item', 'decisions', ['project_id', 'item_id', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_decisions_item', table_name='decisions')
    op.drop_table('decisions')
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.drop_column('ties')
