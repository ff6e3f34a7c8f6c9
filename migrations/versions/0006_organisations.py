"""several Xero organisations per practice: routing of Cliniko businesses, rows and contacts per organisation

- `sync_jobs.connection_id`: the organisation a row goes to (backfilled to the practice's first active
  connection, else its first connection). Contact rows become one per (patient, organisation): the unique
  (practice_id, kind, cliniko_id) is replaced by a partial unique index for kind <> 'contact' and a unique
  (practice_id, cliniko_id, connection_id) NULLS NOT DISTINCT for kind = 'contact'.
- `contacts.connection_id` (unique per practice, organisation and patient), `mappings.connection_id`
  (NULL = practice-wide, else that organisation's own choice), `xero_connections.settings` (the
  organisation's own default accounts), and `business_routes`.
- A new job kind `appointment` (an invoice built from a Cliniko appointment).

Revision ID: 0006_organisations
Revises: 0005_activity_rollup
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0006_organisations"
down_revision = "0005_activity_rollup"
branch_labels = None
depends_on = None

OLD_KINDS = "kind IN ('contact','invoice','payment','void','payment_delete')"
NEW_KINDS = "kind IN ('contact','invoice','payment','void','payment_delete','appointment')"

# Existing rows go to the practice's default organisation: its first active connection, else its first
# one still connected, else its first.
BACKFILL_JOBS = """UPDATE sync_jobs t SET connection_id = (SELECT c.id FROM xero_connections c
    WHERE c.practice_id = t.practice_id
    ORDER BY (c.status = 'active') DESC, (c.status <> 'revoked') DESC, c.id LIMIT 1)"""
BACKFILL_CONTACTS = """UPDATE contacts t SET connection_id = (SELECT c.id FROM xero_connections c
    WHERE c.practice_id = t.practice_id
    ORDER BY (c.status = 'active') DESC, (c.status <> 'revoked') DESC, c.id LIMIT 1)"""


def upgrade():
    op.create_table(
        "business_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("cliniko_business_id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["xero_connections.id"],
                                name=op.f("fk_business_routes_connection_id_xero_connections"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["practice_id"], ["practices.id"],
                                name=op.f("fk_business_routes_practice_id_practices"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_routes")),
        sa.UniqueConstraint("practice_id", "cliniko_business_id", name=op.f("uq_business_routes_practice_id")),
    )

    with op.batch_alter_table("xero_connections") as batch_op:
        batch_op.add_column(sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()),
                                      server_default=sa.text("'{}'::jsonb"), nullable=False))

    # sync_jobs: the organisation of each row, and contacts per organisation.
    with op.batch_alter_table("sync_jobs") as batch_op:
        batch_op.add_column(sa.Column("connection_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_sync_jobs_connection_id_xero_connections"), "xero_connections",
                                    ["connection_id"], ["id"], ondelete="SET NULL")
    op.execute(BACKFILL_JOBS)
    op.drop_constraint(op.f("uq_sync_jobs_practice_id"), "sync_jobs", type_="unique")
    op.create_index("uq_sync_jobs_row", "sync_jobs", ["practice_id", "kind", "cliniko_id"], unique=True,
                    postgresql_where=sa.text("kind <> 'contact'"))
    op.create_index("uq_sync_jobs_contact", "sync_jobs", ["practice_id", "cliniko_id", "connection_id"], unique=True,
                    postgresql_where=sa.text("kind = 'contact'"), postgresql_nulls_not_distinct=True)
    op.create_index("ix_sync_jobs_connection_due", "sync_jobs", ["connection_id", "kind", "status", "next_attempt_at"])
    op.create_index("ix_sync_jobs_unrouted", "sync_jobs", ["practice_id"],
                    postgresql_where=sa.text("connection_id IS NULL"))
    op.drop_constraint(op.f("ck_sync_jobs_kind"), "sync_jobs", type_="check")
    op.create_check_constraint(op.f("ck_sync_jobs_kind"), "sync_jobs", sa.text(NEW_KINDS))

    with op.batch_alter_table("contacts") as batch_op:
        batch_op.add_column(sa.Column("connection_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_contacts_connection_id_xero_connections"), "xero_connections",
                                    ["connection_id"], ["id"], ondelete="CASCADE")
    op.execute(BACKFILL_CONTACTS)
    op.drop_constraint(op.f("uq_contacts_practice_id"), "contacts", type_="unique")
    op.create_index("uq_contacts_patient", "contacts", ["practice_id", "connection_id", "cliniko_patient_id"],
                    unique=True, postgresql_nulls_not_distinct=True)

    with op.batch_alter_table("mappings") as batch_op:
        batch_op.add_column(sa.Column("connection_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_mappings_connection_id_xero_connections"), "xero_connections",
                                    ["connection_id"], ["id"], ondelete="CASCADE")
    op.drop_constraint(op.f("uq_mappings_practice_id"), "mappings", type_="unique")
    op.create_index("uq_mappings_row", "mappings", ["practice_id", "kind", "cliniko_id", "connection_id"],
                    unique=True, postgresql_nulls_not_distinct=True)


def downgrade():
    # Per-organisation rows cannot be folded back into one row per patient: keep the oldest.
    op.drop_index("uq_mappings_row", table_name="mappings")
    op.execute("DELETE FROM mappings WHERE connection_id IS NOT NULL")
    op.create_unique_constraint(op.f("uq_mappings_practice_id"), "mappings", ["practice_id", "kind", "cliniko_id"])
    with op.batch_alter_table("mappings") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_mappings_connection_id_xero_connections"), type_="foreignkey")
        batch_op.drop_column("connection_id")

    op.drop_index("uq_contacts_patient", table_name="contacts")
    op.execute("DELETE FROM contacts c USING contacts d WHERE c.practice_id = d.practice_id "
               "AND c.cliniko_patient_id = d.cliniko_patient_id AND c.id > d.id")
    op.create_unique_constraint(op.f("uq_contacts_practice_id"), "contacts", ["practice_id", "cliniko_patient_id"])
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_contacts_connection_id_xero_connections"), type_="foreignkey")
        batch_op.drop_column("connection_id")

    op.execute("DELETE FROM sync_jobs WHERE kind = 'appointment'")
    op.drop_constraint(op.f("ck_sync_jobs_kind"), "sync_jobs", type_="check")
    op.create_check_constraint(op.f("ck_sync_jobs_kind"), "sync_jobs", sa.text(OLD_KINDS))
    op.drop_index("ix_sync_jobs_unrouted", table_name="sync_jobs")
    op.drop_index("ix_sync_jobs_connection_due", table_name="sync_jobs")
    op.drop_index("uq_sync_jobs_contact", table_name="sync_jobs")
    op.drop_index("uq_sync_jobs_row", table_name="sync_jobs")
    op.execute("DELETE FROM sync_jobs j USING sync_jobs d WHERE j.kind = 'contact' AND d.kind = 'contact' "
               "AND j.practice_id = d.practice_id AND j.cliniko_id = d.cliniko_id AND j.id > d.id")
    op.create_unique_constraint(op.f("uq_sync_jobs_practice_id"), "sync_jobs", ["practice_id", "kind", "cliniko_id"])
    with op.batch_alter_table("sync_jobs") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_sync_jobs_connection_id_xero_connections"), type_="foreignkey")
        batch_op.drop_column("connection_id")

    with op.batch_alter_table("xero_connections") as batch_op:
        batch_op.drop_column("settings")
    op.drop_table("business_routes")
