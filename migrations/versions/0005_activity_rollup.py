"""activity roll-up for the dashboard charts, kept by triggers

`sync_activity` (practice, 15-minute UTC slot, synced, failed) is maintained inside Postgres, in the
same transaction as the change, by statement-level triggers with transition tables (one upsert per
slot per statement, whatever the number of rows):

- sync_jobs INSERT / UPDATE / DELETE: `synced` is the number of rows now `status = 'synced'` with
  `synced_at` in the slot. An UPDATE adds the new image of each qualifying row and subtracts the old
  one, so a re-sync moves the row to its new slot, a re-queue of a synced row takes it out, and an
  update that changes neither status nor synced_at nets to zero (no write).
- sync_attempts INSERT / UPDATE / DELETE: `failed` is the number of attempts with outcome `error` or
  `ambiguous` (and a practice) whose `started_at` is in the slot.
- DELETE only decrements slots that exist (an UPDATE, never an INSERT): when a practice is deleted its
  slots go by the foreign key's ON DELETE CASCADE, and the cascaded deletes of its jobs and attempts
  must not re-create them.
- TRUNCATE of either table zeroes its column.
- Concurrency: writers of one practice's slots serialize on a transaction-level advisory lock per
  practice (taken in practice order before any upsert), so two transactions touching two slots in
  opposite orders wait instead of deadlocking; the wait lasts until the other's commit, which is what the
  row lock on the shared "current" slot would cost anyway.

The upgrade creates the triggers before the backfill: CREATE TRIGGER holds a SHARE ROW EXCLUSIVE lock on
both tables until the migration commits, so no write can slip between the backfill's read and the
triggers taking over.

Revision ID: 0005_activity_rollup
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005_activity_rollup"
down_revision = "0004"
branch_labels = None
depends_on = None

SLOT = "date_bin(interval '15 minutes', {col}, timestamptz '2000-01-01 00:00+00')"
JOB_SLOT = SLOT.format(col="synced_at")
ATTEMPT_SLOT = SLOT.format(col="started_at")
JOB_COUNTS = "status = 'synced' AND synced_at IS NOT NULL"
ATTEMPT_COUNTS = "outcome IN ('error', 'ambiguous') AND practice_id IS NOT NULL"


# Writers of one practice's slots take this transaction-level advisory lock (key LOCK_KEY, practice_id)
# first, in practice order: two workers of one practice whose transactions touch two slots (a batch
# straddling a 15-minute boundary) in opposite orders wait for each other instead of deadlocking.
LOCK_KEY = 0x73796E63  # "sync"


def _function(name: str, column: str, slot: str, counts: str) -> str:
    """A trigger function keeping `column` of sync_activity for one base table (INSERT/UPDATE/DELETE/TRUNCATE).

    Each trigger has only the transition tables its event provides; plpgsql resolves a table name when
    the statement first runs, so each branch names only the tables of its own event. A statement that
    changes nothing that counts (a claim, a heartbeat, a purge of request bodies) takes no lock and writes
    nothing."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_advisory_xact_lock({LOCK_KEY}, practice_id)
        FROM (SELECT DISTINCT practice_id FROM new_rows WHERE {counts} ORDER BY 1) p;
        IF FOUND THEN
            INSERT INTO sync_activity AS a (practice_id, slot, {column})
            SELECT practice_id, {slot}, count(*) FROM new_rows WHERE {counts}
            GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (practice_id, slot) DO UPDATE SET {column} = a.{column} + excluded.{column};
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM pg_advisory_xact_lock({LOCK_KEY}, practice_id)
        FROM (SELECT practice_id FROM new_rows WHERE {counts}
              UNION SELECT practice_id FROM old_rows WHERE {counts} ORDER BY 1) p;
        IF FOUND THEN
            INSERT INTO sync_activity AS a (practice_id, slot, {column})
            SELECT practice_id, slot, sum(delta) FROM (
                SELECT practice_id, {slot} AS slot, 1 AS delta FROM new_rows WHERE {counts}
                UNION ALL
                SELECT practice_id, {slot}, -1 FROM old_rows WHERE {counts}
            ) d
            GROUP BY 1, 2 HAVING sum(delta) <> 0 ORDER BY 1, 2
            ON CONFLICT (practice_id, slot) DO UPDATE SET {column} = a.{column} + excluded.{column};
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_advisory_xact_lock({LOCK_KEY}, practice_id)
        FROM (SELECT DISTINCT practice_id FROM old_rows WHERE {counts} ORDER BY 1) p;
        IF FOUND THEN
            UPDATE sync_activity AS a SET {column} = a.{column} - d.n
            FROM (SELECT practice_id, {slot} AS slot, count(*) AS n FROM old_rows WHERE {counts}
                  GROUP BY 1, 2) d
            WHERE a.practice_id = d.practice_id AND a.slot = d.slot;
        END IF;
    ELSE  -- TRUNCATE
        UPDATE sync_activity SET {column} = 0 WHERE {column} <> 0;
    END IF;
    RETURN NULL;
END
$fn$
"""  # noqa: S608 (constants of this module only)


def _triggers(table: str, function: str) -> list[str]:
    # A trigger with transition tables may have only one event, hence one trigger per event.
    return [
        f"CREATE TRIGGER {table}_activity_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {table}_activity_update AFTER UPDATE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {table}_activity_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {table}_activity_truncate AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


BACKFILL = f"""
INSERT INTO sync_activity (practice_id, slot, synced, failed)
SELECT practice_id, slot, sum(synced), sum(failed) FROM (
    SELECT practice_id, {JOB_SLOT} AS slot, count(*) AS synced, 0 AS failed
    FROM sync_jobs WHERE {JOB_COUNTS} GROUP BY 1, 2
    UNION ALL
    SELECT practice_id, {ATTEMPT_SLOT}, 0, count(*)
    FROM sync_attempts WHERE {ATTEMPT_COUNTS} GROUP BY 1, 2
) c
GROUP BY 1, 2
"""  # noqa: S608 (constants of this module only)


def upgrade():
    op.create_table(
        "sync_activity",
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practices.id"],
                                name=op.f("fk_sync_activity_practice_id_practices"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("practice_id", "slot", name=op.f("pk_sync_activity")),
    )
    op.execute(_function("sync_activity_from_jobs", "synced", JOB_SLOT, JOB_COUNTS))
    op.execute(_function("sync_activity_from_attempts", "failed", ATTEMPT_SLOT, ATTEMPT_COUNTS))
    for statement in (_triggers("sync_jobs", "sync_activity_from_jobs")
                      + _triggers("sync_attempts", "sync_activity_from_attempts")):
        op.execute(statement)
    op.execute(BACKFILL)


def downgrade():
    for table in ("sync_attempts", "sync_jobs"):
        for event in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_activity_{event} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS sync_activity_from_attempts()")
    op.execute("DROP FUNCTION IF EXISTS sync_activity_from_jobs()")
    op.drop_table("sync_activity")
