"""Re-exports every model so `from webapp.models import X` works and Alembic sees all tables."""

from webapp.models.activity import SyncActivity
from webapp.models.audit import AuditEntry
from webapp.models.backfills import BACKFILL_STATES, Backfill
from webapp.models.base import Base, utcnow
from webapp.models.catalogue import CATALOGUE_KINDS, ClinikoRecord
from webapp.models.contacts import Contact
from webapp.models.jobs import ERROR_CATEGORIES, INVOICE_KINDS, JOB_KINDS, JOB_STATUSES, SyncAttempt, SyncJob
from webapp.models.practices import MAPPING_KINDS, BusinessRoute, Mapping, Practice
from webapp.models.users import ROLES, User
from webapp.models.xero import (
    CONNECTION_STATUSES,
    XeroAccount,
    XeroConnection,
    XeroTaxRate,
    XeroTrackingOption,
)

__all__ = [
    "BACKFILL_STATES",
    "CATALOGUE_KINDS",
    "CONNECTION_STATUSES",
    "ERROR_CATEGORIES",
    "INVOICE_KINDS",
    "JOB_KINDS",
    "JOB_STATUSES",
    "MAPPING_KINDS",
    "ROLES",
    "AuditEntry",
    "Backfill",
    "BusinessRoute",
    "Base",
    "ClinikoRecord",
    "Contact",
    "Mapping",
    "Practice",
    "SyncActivity",
    "SyncAttempt",
    "SyncJob",
    "User",
    "XeroAccount",
    "XeroConnection",
    "XeroTaxRate",
    "XeroTrackingOption",
    "utcnow",
]
