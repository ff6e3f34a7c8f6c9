"""Saving a practice's sync settings and mappings from the admin screens: validate (through
PracticeSettings, the single source of truth), diff, audit, and re-queue what the change could fix."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from webapp.audit import record
from webapp.extensions import db
from webapp.models import (
    ClinikoRecord,
    Mapping,
    Practice,
    SyncJob,
    User,
    XeroAccount,
    XeroConnection,
    XeroTaxRate,
    XeroTrackingOption,
)
from webapp.sync.settings import PracticeSettings, SettingsError

logger = logging.getLogger(__name__)

# The settings the Settings screen manages, grouped as on the screen (SPEC §8 item 2). The default
# accounts (sales/payment/rounding/tax-exempt) are chosen on the practice page and kept as they are.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Workflow", ("invoice_source", "appointment_completion", "only_appointment_types", "claim_appointment_types",
                  "only_businesses", "dry_run")),
    ("Invoices", ("invoice_status", "invoice_number_prefix", "reference_template", "line_description_template",
                  "line_amount_types", "due_days")),
    ("Contacts", ("contact_timing", "contact_number_prefix", "contact_details")),
    ("Filters", ("sync_from", "exclude_billable_items", "exclude_products", "exclude_businesses",
                 "exclude_practitioners", "skip_zero_total", "only_paid")),
    ("Policies", ("closed_policy", "rounding_tolerance", "time_zone")),
)
MANAGED: tuple[str, ...] = tuple(name for _, names in GROUPS for name in names)
# Settings whose change can skip or un-skip rows not yet in Xero (re-checked in the background).
FILTER_KEYS = frozenset(dict(GROUPS)["Filters"]) | {"only_appointment_types", "claim_appointment_types",
                                                     "only_businesses"}
# Settings holding Cliniko ids picked from the practice's Cliniko catalogue, and the catalogue kind of each.
EXCLUDE_KINDS = {"exclude_billable_items": "billable_item", "exclude_products": "product",
                 "exclude_businesses": "business", "exclude_practitioners": "practitioner",
                 "only_appointment_types": "appointment_type", "claim_appointment_types": "appointment_type",
                 "only_businesses": "business"}
FIXABLE = ("mapping", "totals")


def effective(practice: Practice) -> PracticeSettings:
    """The settings the sync uses for this practice (as webapp.sync.context.load reads them)."""
    return PracticeSettings.from_dict({"time_zone": practice.time_zone, **(practice.settings or {})})


def stored_or_default(practice: Practice) -> dict[str, Any]:
    """The managed settings as JSON values: what is stored, else the default (bad stored values tolerated)."""
    defaults = PracticeSettings().to_dict()
    current = {"time_zone": practice.time_zone, **(practice.settings or {})}
    result = {}
    for name in MANAGED:
        try:
            result[name] = PracticeSettings.from_dict({name: current.get(name)}).to_dict()[name]
        except SettingsError:
            result[name] = current.get(name, defaults[name])
    return result


def validate(values: dict[str, Any]) -> tuple[PracticeSettings | None, dict[str, str]]:
    """Check each submitted setting with PracticeSettings.from_dict; ({name: message} for the bad ones)."""
    errors: dict[str, str] = {}
    for name in MANAGED:
        if name not in values:
            continue
        try:
            PracticeSettings.from_dict({name: values[name]})
        except SettingsError as exc:
            errors[name] = str(exc)
    if errors:
        return None, errors
    try:
        return PracticeSettings.from_dict(values), {}
    except SettingsError as exc:  # pragma: no cover - every field was checked above
        return None, {"__all__": str(exc)}


@dataclass
class SaveResult:
    """What a save changed and what it set in motion."""

    changed: dict[str, list] = field(default_factory=dict)
    requeued: int = 0
    refilter_queued: bool = False

    def message(self) -> str:
        if not self.changed:
            return "Nothing changed."
        text = "Saved. " + _requeued_text(self.requeued)
        if self.refilter_queued:
            text += " Skipped and waiting invoices are being re-checked against the new filters."
        return text


def _requeued_text(count: int) -> str:
    if count == 0:
        return "No failed invoices needed re-queueing."
    return f"{count} failed invoice{'s' if count != 1 else ''} re-queued."


def save_settings(practice: Practice, user: User | None, values: dict[str, Any]) -> SaveResult:
    """Store the managed settings (other keys kept), audit what changed, re-queue fixable failures and,
    when a filter changed, re-check skipped rows in the background. Raises SettingsError on a bad value."""
    parsed, errors = validate(values)
    if parsed is None:
        raise SettingsError("; ".join(errors.values()))
    new = {name: parsed.to_dict()[name] for name in MANAGED if name in values}
    old = stored_or_default(practice)
    changed = {name: [old.get(name), value] for name, value in new.items() if old.get(name) != value}
    result = SaveResult(changed=changed)
    if not changed:
        return result
    settings = dict(practice.settings or {})
    settings.update(new)
    practice.settings = settings
    if "time_zone" in new:
        practice.time_zone = new["time_zone"]
    if "sync_from" in new:
        practice.sync_from = parsed.sync_from
    record("practice.settings", user=user, object_type="practice", object_id=practice.id,
           practice_id=practice.id, details={"changed": changed})
    db.session.commit()
    result.requeued = requeue_fixable(practice.id, user)
    if FILTER_KEYS & changed.keys():
        result.refilter_queued = enqueue_refilter(practice.id, user)
    if "dry_run" in changed and not parsed.dry_run and practice.sync_enabled:
        from jobs.sync import enqueue_push

        enqueue_push(practice.id)  # out of dry run: send what was discovered meanwhile
    return result


def requeue_fixable(practice_id: int, user: User | None) -> int:
    """Re-queue the practice's mapping/totals failures (webapp.sync.requeue.requeue_fixable)."""
    from webapp.sync.requeue import requeue_fixable as _requeue_fixable

    return _requeue_fixable(practice_id, user, FIXABLE)


def enqueue_refilter(practice_id: int, user: User | None) -> bool:
    """Queue reevaluate_filters for the practice (a background job: it may touch many rows)."""
    from jobs.queues import enqueue

    try:
        enqueue("webapp.practice_settings.reevaluate_filters", practice_id, getattr(user, "id", None) or 0,
                queue_name="live", job_id=f"refilter-{practice_id}")
    except Exception:  # Redis down: the settings are saved; the next change of each invoice re-checks it
        logger.exception("could not queue the filter re-check of practice %s", practice_id)
        return False
    return True


def reevaluate_filters(practice_id: int, user_id: int = 0, batch: int = 500) -> dict[str, int]:
    """Re-check invoice rows not yet in Xero against the current filters: skipped rows a filter no longer
    excludes go back to pending; unsent rows a filter now excludes are skipped. Returns counts."""
    from webapp.sync import changes, plans, states
    from webapp.sync.context import load
    from webapp.sync.snapshot import from_json

    practice = db.session.get(Practice, practice_id, populate_existing=True)
    counts = {"checked": 0, "requeued": 0, "skipped": 0}
    if practice is None:
        return counts
    ctx = load(practice)
    last_id = 0
    while True:
        rows = db.session.scalars(
            select(SyncJob).where(SyncJob.practice_id == practice_id, SyncJob.kind.in_(("invoice", "appointment")),
                                  SyncJob.xero_id.is_(None), SyncJob.id > last_id,
                                  SyncJob.status.in_(("skipped", *changes.UNSETTLED)))
            .order_by(SyncJob.id).limit(batch).with_for_update(skip_locked=True)
        ).all()
        if not rows:
            break
        for row in rows:
            last_id = row.id
            invoice = from_json((row.source or {}).get("invoice")) or {}
            if row.kind == "appointment":
                if (row.source or {}).get("skip"):
                    continue  # cancelled, no-show, deleted, not completed: not a setting's doing
            elif not invoice or changes._deleted_reason(ctx, invoice):
                continue  # deleted, archived or voided-when-closed: not a filter's doing
            counts["checked"] += 1
            built = plans.invoice_for_row(ctx, row)
            if built.skip:
                if row.status == "skipped":
                    row.status_reason = built.skip
                else:
                    states.skip(row, built.skip)
                    counts["skipped"] += 1
            elif row.status == "skipped":
                states.requeue(row)
                if row.kind == "invoice":
                    changes.apply_followups(ctx, row)
                counts["requeued"] += 1
        db.session.commit()
    if counts["requeued"] or counts["skipped"]:
        record("practice.refilter", user=db.session.get(User, user_id) if user_id else None,
               object_type="practice", object_id=practice_id, practice_id=practice_id, details=counts)
        db.session.commit()
    if counts["requeued"]:
        from jobs.sync import enqueue_push

        enqueue_push(practice_id)
    logger.info("filters of practice %s re-checked: %s", practice_id, counts)
    return counts


# -- mappings ------------------------------------------------------------------------------------------------------

#: The Xero choices each kind of Cliniko record can carry (SPEC §7 precedence), in column order.
MAPPING_FIELDS: dict[str, tuple[str, ...]] = {
    "billable_item": ("account_code",),
    "product": ("account_code",),
    "practitioner": ("account_code", "payment_account_code", "tracking_option_id"),
    "business": ("account_code", "payment_account_code", "tracking_option_id"),
    "tax": ("tax_type",),
}
KIND_LABELS = {"billable_item": ("Billable items", "billable item"), "product": ("Products", "product"),
               "practitioner": ("Practitioners", "practitioner"), "business": ("Businesses", "business"),
               "tax": ("Taxes", "tax")}
FIELD_LABELS = {"account_code": "Sales account", "payment_account_code": "Payment account",
                "tax_type": "Xero tax rate", "tracking_option_id": "Tracking option"}
REVENUE_TYPES = ("REVENUE", "SALES", "OTHERINCOME")


@dataclass
class Pickers:
    """The active Xero choices for the mapping pickers, and labels for every known code (archived too)."""

    connection: XeroConnection | None
    accounts: list[tuple[str, str]] = field(default_factory=list)
    payment_accounts: list[tuple[str, str]] = field(default_factory=list)
    tax_rates: list[tuple[str, str]] = field(default_factory=list)
    tracking: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def choices(self, name: str) -> list[tuple[str, str]]:
        return {"account_code": self.accounts, "payment_account_code": self.payment_accounts,
                "tax_type": self.tax_rates, "tracking_option_id": self.tracking}[name]

    def label(self, name: str, value: str | None) -> str | None:
        if not value:
            return None
        group = "account_code" if name == "payment_account_code" else name
        return self.labels.get(group, {}).get(value)


def pickers(connection: XeroConnection | None) -> Pickers:
    """Choices from the active connection's lists; archived accounts, rates and options are not offered."""
    result = Pickers(connection, labels={"account_code": {}, "tax_type": {}, "tracking_option_id": {}})
    if connection is None:
        return result
    accounts = db.session.scalars(select(XeroAccount).where(XeroAccount.connection_id == connection.id)
                                  .order_by(XeroAccount.code)).all()
    for a in accounts:
        if not a.code:
            continue
        label = f"{a.code} · {a.name}"
        result.labels["account_code"][a.code] = label if a.status == "ACTIVE" else f"{label} (archived in Xero)"
        if a.status != "ACTIVE":
            continue
        if a.type == "BANK" or a.enable_payments_to_account:
            result.payment_accounts.append((a.code, label))
        if a.type != "BANK" and not a.system_account:
            result.accounts.append((a.code, label))
    # Revenue accounts first: they are what overrides usually point at.
    result.accounts.sort(key=lambda c: (next(a.type for a in accounts if a.code == c[0]) not in REVENUE_TYPES, c[0]))
    rates = db.session.scalars(select(XeroTaxRate).where(XeroTaxRate.connection_id == connection.id)
                               .order_by(XeroTaxRate.name)).all()
    for t in rates:
        label = f"{t.name} ({t.tax_type})"
        result.labels["tax_type"][t.tax_type] = label if t.status == "ACTIVE" else f"{label} (archived in Xero)"
        if t.status == "ACTIVE" and t.can_apply_to_revenue:
            result.tax_rates.append((t.tax_type, label))
    options = db.session.scalars(select(XeroTrackingOption).where(XeroTrackingOption.connection_id == connection.id)
                                 .order_by(XeroTrackingOption.category_name, XeroTrackingOption.option_name)).all()
    for o in options:
        label = f"{o.category_name}: {o.option_name}"
        result.labels["tracking_option_id"][o.option_id] = label if o.status == "ACTIVE" else f"{label} (archived)"
        if o.status == "ACTIVE":
            result.tracking.append((o.option_id, label))
    return result


def catalogue(practice_id: int, kind: str) -> list[ClinikoRecord]:
    """The cached Cliniko records of one kind: active first, then by name."""
    return db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == practice_id, ClinikoRecord.kind == kind)
        .order_by(ClinikoRecord.archived, ClinikoRecord.name, ClinikoRecord.id)).all()


def mappings_of(practice_id: int, kind: str, connection_id: int | None = None) -> dict[str, Mapping]:
    """{cliniko_id: Mapping} of one kind: the practice-wide rows (connection_id None), or one organisation's
    own rows (its overrides of the practice-wide ones)."""
    return {m.cliniko_id: m for m in db.session.scalars(select(Mapping).where(
        Mapping.practice_id == practice_id, Mapping.kind == kind,
        Mapping.connection_id.is_not_distinct_from(connection_id)))}


def default_text(kind: str, name: str, settings: PracticeSettings, picks: Pickers,
                 inherited: str | None = None) -> str:
    """What an unmapped row gets, in words ("default: 200 · Sales"); for an organisation's own mapping left
    blank with a practice-wide one set (`inherited`), that one ("practice-wide: 200 · Sales")."""
    if inherited:
        label = picks.label(name, inherited)
        return "practice-wide: " + (label or f"{inherited} (not in this organisation's Xero lists)")

    def account(code: str | None, what: str) -> str:
        if not code:
            return f"no default {what} account set"
        return "default: " + (picks.label("account_code", code) or code)

    if name == "account_code":
        text = account(settings.sales_account, "sales")
        if kind in ("billable_item", "product"):
            return text + " (unless a practitioner or business override applies)"
        if kind == "practitioner":
            return text + " (unless a business override applies)"
        return text
    if name == "payment_account_code":
        text = account(settings.payment_account, "payment")
        return text + " (unless a business override applies)" if kind == "practitioner" else text
    if name == "tax_type":
        if not settings.tax_exempt:
            return "no tax-exempt rate set: taxed lines fail until mapped"
        return "default: " + (picks.label("tax_type", settings.tax_exempt) or settings.tax_exempt) + \
            " (the tax-exempt rate)"
    return "default: no tracking"


@dataclass
class MappingSaveResult:
    """Rows created, updated and removed by one mapping form, and failures re-queued."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    changes: dict[str, dict[str, list]] = field(default_factory=dict)
    requeued: int = 0
    organisation: str | None = None  # the organisation whose own mappings were saved (None: practice-wide)

    def message(self, kind: str) -> str:
        plural = KIND_LABELS[kind][0].lower()
        where = f" for {self.organisation}" if self.organisation else ""
        if not self.changes:
            return f"No changes to {plural}{where}."
        back = "the practice-wide mapping" if self.organisation else "the default"
        return (f"Saved {plural}{where}: {self.created} mapped, {self.updated} changed, {self.deleted} back to "
                f"{back}. " + _requeued_text(self.requeued))


def save_mappings(practice: Practice, user: User | None, kind: str, chosen: dict[str, dict[str, str | None]],
                  names: dict[str, str], connection: XeroConnection | None = None) -> MappingSaveResult:
    """Upsert or delete the practice's mapping rows of one kind ({cliniko_id: {field: value or None}}), the
    practice-wide ones or, with `connection`, that organisation's own; audit, commit, then re-queue the
    failures the change could fix (with `connection`: only those of rows routed to that organisation)."""
    if connection is not None and connection.practice_id != practice.id:
        raise ValueError("That Xero organisation is not connected to this practice.")
    connection_id = connection.id if connection is not None else None
    managed = MAPPING_FIELDS[kind]
    existing = mappings_of(practice.id, kind, connection_id)
    result = MappingSaveResult(organisation=connection.tenant_name if connection is not None else None)
    for cliniko_id, values in chosen.items():
        values = {k: (values.get(k) or None) for k in managed}
        row = existing.get(cliniko_id)
        before = {k: getattr(row, k) if row is not None else None for k in managed}
        if before == values:
            continue
        result.changes[cliniko_id] = {k: [before[k], values[k]] for k in managed if before[k] != values[k]}
        if row is None:
            row = Mapping(practice_id=practice.id, kind=kind, cliniko_id=cliniko_id, connection_id=connection_id)
            db.session.add(row)
            result.created += 1
        for k, v in values.items():
            setattr(row, k, v)
        row.cliniko_name = (names.get(cliniko_id) or row.cliniko_name or "")[:255] or None
        if all(getattr(row, k) is None for k in ("account_code", "tax_type", "tracking_option_id",
                                                  "payment_account_code")):
            if row.id is not None:
                db.session.delete(row)
                result.deleted += 1
            else:
                db.session.expunge(row)
                result.created -= 1
        elif row.id is not None:
            result.updated += 1
    if not result.changes:
        return result
    details = {"kind": kind, "created": result.created, "updated": result.updated, "deleted": result.deleted,
               "changes": dict(list(result.changes.items())[:200])}
    if connection is not None:
        details.update(connection_id=connection.id, organisation=connection.tenant_name)
    record("mapping.save", user=user, object_type="mapping", practice_id=practice.id, details=details)
    db.session.commit()
    if connection is None:
        result.requeued = requeue_fixable(practice.id, user)
    else:
        from webapp.sync.requeue import requeue

        result.requeued = requeue(select(SyncJob).where(
            SyncJob.practice_id == practice.id, SyncJob.connection_id == connection.id,
            SyncJob.status == "failed", SyncJob.error_category.in_(FIXABLE)), user, reason="requeue.auto")
    return result
