"""The activity roll-up (`sync_activity`): synced rows and failed attempts per practice per 15-minute
UTC slot, read by the dashboard charts instead of grouping `sync_jobs` / `sync_attempts`.

Nothing in Python writes it. Statement-level triggers with transition tables (migration
0005_activity_rollup) keep it equal, in the same transaction as every change, to:

- `synced`: the number of `sync_jobs` rows now in state `synced` whose `synced_at` falls in the slot
  (a row that is re-synced moves from its old slot to its new one; a synced row that is re-queued or
  deleted leaves its slot);
- `failed`: the number of `sync_attempts` rows with outcome `error` or `ambiguous` whose `started_at`
  falls in the slot (attempts without a practice are not counted, as before).

Slots are `date_bin('15 minutes', t, '2000-01-01 00:00+00')`: every time zone's offset is a multiple of
15 minutes, so folding slots into a practice's local hours or days is exact. Deleting a practice
deletes its slots (foreign key, ON DELETE CASCADE). Rows whose counts drop to zero are kept (harmless).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base

SLOT_MINUTES = 15


class SyncActivity(Base):
    """Synced rows and failed attempts of one practice in one 15-minute UTC slot (trigger-maintained)."""

    __tablename__ = "sync_activity"

    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), primary_key=True)
    # Start of the slot (timezone-aware UTC).
    slot: Mapped[datetime] = mapped_column(primary_key=True)
    synced: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    def __repr__(self) -> str:
        return f"<SyncActivity {self.practice_id} {self.slot:%Y-%m-%d %H:%M} +{self.synced} -{self.failed}>"
