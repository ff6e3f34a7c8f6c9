"""appointment mode: find the invoice row of an appointment by index

`webapp.sync.appointments` asks, per page of appointments, whether each one's Cliniko invoice is already
in Xero; without an index that is a scan of the practice's invoice rows.

Revision ID: 0007_invoice_appointment_index
Revises: 0006_organisations
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_invoice_appointment_index"
down_revision = "0006_organisations"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_sync_jobs_invoice_appointment", "sync_jobs",
                    ["practice_id", sa.text("((source -> 'invoice') ->> 'appointment_id')")],
                    postgresql_where=sa.text("kind = 'invoice'"))


def downgrade():
    op.drop_index("ix_sync_jobs_invoice_appointment", table_name="sync_jobs")
