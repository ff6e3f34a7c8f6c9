"""the push's claim reads due rows in order instead of sorting the backlog

`Pusher.claim` asks for the first batch of an organisation's due rows of one kind ordered by
(priority, next_attempt_at, id); a partial index over exactly the due states gives that order directly.

Revision ID: 0008_claim_index
Revises: 0007_invoice_appointment_index
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_claim_index"
down_revision = "0007_invoice_appointment_index"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_sync_jobs_claim", "sync_jobs", ["connection_id", "kind", "priority", "next_attempt_at", "id"],
                    postgresql_where=sa.text("status IN ('pending', 'retrying')"))


def downgrade():
    op.drop_index("ix_sync_jobs_claim", table_name="sync_jobs")
