"""A practice's sync settings, its Cliniko→Xero mappings and the Xero reference data, as frozen values."""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from webapp.sync.mapping_common import DEFAULT_TIME_ZONE, as_decimal, clean_text

REFERENCE_PLACEHOLDERS = frozenset({"number", "patient", "practitioner", "business", "appointment_date"})
LINE_PLACEHOLDERS = frozenset({"item", "code", "practitioner", "appointment_date"})
MAPPING_KINDS = frozenset({"billable_item", "product", "practitioner", "business", "tax"})

# ContactNumber is at most 50 characters in Xero and Cliniko ids are int64 (≤ 19 digits).
MAX_CONTACT_PREFIX = 30
MAX_INVOICE_PREFIX = 50
_TRUE = {"true", "1", "yes", "on", "y"}
_FALSE = {"false", "0", "no", "off", "n", ""}


class SettingsError(ValueError):
    """A practice setting or mapping row has a value the sync cannot use; the message names it."""


def _text(name: str, value: Any, *, allow_empty: bool = True, limit: int = 255) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise SettingsError(f"Setting '{name}' must be text, not {type(value).__name__}.")
    text = str(value)
    if name.endswith("_prefix"):
        # Prefixes are kept as typed ("INV " keeps its space) but must not smuggle control characters.
        if clean_text(text) != " ".join(text.split()) or any(c in text for c in "\t\n\r"):
            raise SettingsError(f"Setting '{name}' contains control characters.")
    else:
        text = clean_text(text)
    if len(text) > limit:
        raise SettingsError(f"Setting '{name}' is too long ({len(text)} characters; at most {limit}).")
    if not text and not allow_empty:
        raise SettingsError(f"Setting '{name}' cannot be empty.")
    return text


def _code(name: str, value: Any) -> str | None:
    text = _text(name, value, limit=64).strip()
    return text or None


def _choice(name: str, value: Any, choices: dict[str, str], default: str) -> str:
    if value is None or value == "":
        return default
    key = str(value).strip().lower()
    if key not in choices:
        allowed = ", ".join(sorted(set(choices.values())))
        raise SettingsError(f"Setting '{name}' must be one of {allowed}, not {value!r}.")
    return choices[key]


def _bool(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise SettingsError(f"Setting '{name}' must be true or false, not {value!r}.")


def _int(name: str, value: Any, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise SettingsError(f"Setting '{name}' must be a whole number, not {value!r}.")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise SettingsError(f"Setting '{name}' must be a whole number, not {value!r}.") from None
    if not low <= number <= high:
        raise SettingsError(f"Setting '{name}' must be between {low} and {high}, not {number}.")
    return number


def _date(name: str, value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise SettingsError(f"Setting '{name}' must be a date (YYYY-MM-DD), not {value!r}.")


def _ids(name: str, value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        raise SettingsError(f"Setting '{name}' must be a list of Cliniko ids, not {value!r}.")
    result = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise SettingsError(f"Setting '{name}' must list Cliniko ids, and {item!r} is not one.")
        text = str(item).strip()
        if text:
            result.append(text)
    return tuple(dict.fromkeys(result))


def _tolerance(name: str, value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal("0.05")
    number = None if isinstance(value, bool) else as_decimal(value)
    if number is None or number < 0 or number > 1:
        raise SettingsError(f"Setting '{name}' must be an amount between 0 and 1.00 dollars, not {value!r}.")
    return number


def template_fields(template: str) -> list[str]:
    """The placeholder names in a `{name}` template (SettingsError when the braces are malformed)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise SettingsError(f"malformed template {template!r}: {exc}") from None


def _template(name: str, value: Any, allowed: frozenset[str], default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise SettingsError(f"Setting '{name}' must be text, not {type(value).__name__}.")
    if len(value) > 1000:
        raise SettingsError(f"Setting '{name}' is too long (at most 1000 characters).")
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError:
        raise SettingsError(f"Setting '{name}' has unbalanced braces: {value!r}.") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in allowed or spec or conversion:
            raise SettingsError(
                f"Setting '{name}' uses an unknown placeholder {{{field_name}}}; "
                f"use {', '.join('{' + a + '}' for a in sorted(allowed))}."
            )
    return value


def _zone(name: str, value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_TIME_ZONE
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"Setting '{name}' must be an IANA time zone such as Australia/Sydney, "
                            f"not {value!r}.") from None
    return str(value)


@dataclass(frozen=True)
class PracticeSettings:
    """Everything a practice can choose about how its invoices, contacts and payments reach Xero."""

    sales_account: str | None = None
    payment_account: str | None = None
    rounding_account: str | None = None
    tax_exempt: str | None = None
    invoice_status: str = "AUTHORISED"
    invoice_number_prefix: str = ""
    reference_template: str = "Cliniko {number}"
    line_description_template: str = "{item}"
    line_amount_types: str = "Exclusive"
    due_days: int = 0
    contact_number_prefix: str = "CLK-"
    contact_details: str = "email"
    sync_from: date | None = None
    exclude_billable_items: tuple[str, ...] = ()
    exclude_products: tuple[str, ...] = ()
    exclude_businesses: tuple[str, ...] = ()
    exclude_practitioners: tuple[str, ...] = ()
    skip_zero_total: bool = False
    only_paid: bool = False
    closed_policy: str = "ignore"
    rounding_tolerance: Decimal = Decimal("0.05")
    time_zone: str = DEFAULT_TIME_ZONE
    # Where Xero invoices come from: Cliniko's invoices, or completed appointments (SPEC §7, issue 8).
    invoice_source: str = "invoices"
    # In appointment mode, an appointment is complete when the patient is marked arrived, or when it
    # has ended without being cancelled or marked "did not arrive".
    appointment_completion: str = "arrived"
    only_appointment_types: tuple[str, ...] = ()
    claim_appointment_types: tuple[str, ...] = ()
    only_businesses: tuple[str, ...] = ()
    # When a patient's Xero contact is made: with their first invoice, or at their first booking.
    contact_timing: str = "first_invoice"
    # Build and show payloads for new work, send nothing.
    dry_run: bool = False

    @property
    def appointment_mode(self) -> bool:
        return self.invoice_source == "appointments"

    @property
    def reads_appointments(self) -> bool:
        """Discovery reads Cliniko appointments (appointment mode, or contacts made at first booking)."""
        return self.appointment_mode or self.contact_timing == "first_booking"

    @classmethod
    def from_dict(cls, data: Any) -> PracticeSettings:
        """Build from a practice's settings JSON; unknown keys are ignored, bad values raise SettingsError."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SettingsError("Practice settings must be a JSON object.")
        d = data.get
        prefix = _text("contact_number_prefix", d("contact_number_prefix"), limit=MAX_CONTACT_PREFIX)
        return cls(
            sales_account=_code("sales_account", d("sales_account")),
            payment_account=_code("payment_account", d("payment_account")),
            rounding_account=_code("rounding_account", d("rounding_account")),
            tax_exempt=_code("tax_exempt", d("tax_exempt")),
            invoice_status=_choice("invoice_status", d("invoice_status"),
                                   {"authorised": "AUTHORISED", "authorized": "AUTHORISED", "draft": "DRAFT"},
                                   "AUTHORISED"),
            invoice_number_prefix=_text("invoice_number_prefix", d("invoice_number_prefix"),
                                        limit=MAX_INVOICE_PREFIX),
            reference_template=_template("reference_template", d("reference_template"),
                                         REFERENCE_PLACEHOLDERS, "Cliniko {number}"),
            line_description_template=_template("line_description_template", d("line_description_template"),
                                                LINE_PLACEHOLDERS, "{item}"),
            line_amount_types=_choice("line_amount_types", d("line_amount_types"),
                                      {"exclusive": "Exclusive", "inclusive": "Inclusive"}, "Exclusive"),
            due_days=_int("due_days", d("due_days"), 0, 0, 365),
            contact_number_prefix="CLK-" if d("contact_number_prefix") is None else prefix,
            contact_details=_choice("contact_details", d("contact_details"),
                                    {"name": "name", "email": "email", "full": "full"}, "email"),
            sync_from=_date("sync_from", d("sync_from")),
            exclude_billable_items=_ids("exclude_billable_items", d("exclude_billable_items")),
            exclude_products=_ids("exclude_products", d("exclude_products")),
            exclude_businesses=_ids("exclude_businesses", d("exclude_businesses")),
            exclude_practitioners=_ids("exclude_practitioners", d("exclude_practitioners")),
            skip_zero_total=_bool("skip_zero_total", d("skip_zero_total"), False),
            only_paid=_bool("only_paid", d("only_paid"), False),
            closed_policy=_choice("closed_policy", d("closed_policy"), {"ignore": "ignore", "void": "void"},
                                  "ignore"),
            rounding_tolerance=_tolerance("rounding_tolerance", d("rounding_tolerance")),
            time_zone=_zone("time_zone", d("time_zone")),
            invoice_source=_choice("invoice_source", d("invoice_source"),
                                   {"invoices": "invoices", "appointments": "appointments"}, "invoices"),
            appointment_completion=_choice("appointment_completion", d("appointment_completion"),
                                           {"arrived": "arrived", "ended": "ended"}, "arrived"),
            only_appointment_types=_ids("only_appointment_types", d("only_appointment_types")),
            claim_appointment_types=_ids("claim_appointment_types", d("claim_appointment_types")),
            only_businesses=_ids("only_businesses", d("only_businesses")),
            contact_timing=_choice("contact_timing", d("contact_timing"),
                                   {"first_invoice": "first_invoice", "first_booking": "first_booking"},
                                   "first_invoice"),
            dry_run=_bool("dry_run", d("dry_run"), False),
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-friendly values (dates ISO, Decimals as strings, tuples as lists)."""
        result: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            result[f.name] = value
        return result


@dataclass(frozen=True)
class TrackingChoice:
    """One Xero tracking option and the category it belongs to."""

    category_id: str
    category_name: str
    option_id: str
    option_name: str


@dataclass(frozen=True)
class MappingRow:
    """One mapping row: a Cliniko billable item, product, practitioner, business or tax and its Xero choices."""

    kind: str
    cliniko_id: str
    cliniko_name: str | None = None
    account_code: str | None = None
    tax_type: str | None = None
    tracking_option_id: str | None = None
    payment_account_code: str | None = None

    @property
    def label(self) -> str:
        """How a person recognises the row: its Cliniko name, else its id."""
        return clean_text(self.cliniko_name) or f"#{self.cliniko_id}"


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def _opt(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _tax_key(name: Any) -> str:
    return clean_text(name).casefold()


@dataclass(frozen=True)
class Mappings:
    """All of a practice's mapping rows, by (kind, Cliniko id), plus the tracking options they may point at."""

    rows: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    tracking_options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    taxes_by_name: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_rows(cls, rows: Iterable[Any] = (), tracking_options: Any = ()) -> Mappings:
        """Build from mapping rows (dicts or model objects) and tracking options (rows, or {option_id: choice})."""
        by_key: dict[tuple[str, str], MappingRow] = {}
        by_tax_name: dict[str, MappingRow] = {}
        for raw in rows or ():
            kind = _opt(_get(raw, "kind"))
            cliniko_id = _opt(_get(raw, "cliniko_id"))
            if kind not in MAPPING_KINDS:
                raise SettingsError(f"Mapping kind must be one of {', '.join(sorted(MAPPING_KINDS))}, not {kind!r}.")
            if cliniko_id is None:
                raise SettingsError(f"A {kind} mapping has no Cliniko id.")
            row = MappingRow(
                kind=kind,
                cliniko_id=cliniko_id,
                cliniko_name=_opt(_get(raw, "cliniko_name")),
                account_code=_opt(_get(raw, "account_code")),
                tax_type=_opt(_get(raw, "tax_type")),
                tracking_option_id=_opt(_get(raw, "tracking_option_id")),
                payment_account_code=_opt(_get(raw, "payment_account_code")),
            )
            by_key[(kind, cliniko_id)] = row
            if kind == "tax" and row.cliniko_name:
                by_tax_name[_tax_key(row.cliniko_name)] = row
        options: dict[str, TrackingChoice] = {}
        items = tracking_options.items() if isinstance(tracking_options, dict) else (
            (None, option) for option in tracking_options or ())
        for key, option in items:
            if isinstance(option, TrackingChoice):
                choice = option
            else:
                if _opt(_get(option, "status")) not in (None, "ACTIVE"):
                    continue  # an archived option cannot be used on a line
                choice = TrackingChoice(
                    category_id=str(_get(option, "category_id") or ""),
                    category_name=str(_get(option, "category_name") or ""),
                    option_id=str(_get(option, "option_id") or key or ""),
                    option_name=str(_get(option, "option_name") or ""),
                )
            options[str(key or choice.option_id)] = choice
        return cls(MappingProxyType(by_key), MappingProxyType(options), MappingProxyType(by_tax_name))

    def get(self, kind: str, cliniko_id: Any) -> MappingRow | None:
        """The mapping row for a Cliniko record, if any."""
        if cliniko_id is None:
            return None
        return self.rows.get((kind, str(cliniko_id)))

    def tax(self, tax_id: Any = None, tax_name: Any = None) -> MappingRow | None:
        """The tax mapping for a Cliniko tax: by id when known, else by name (case and spacing ignored)."""
        row = self.get("tax", tax_id) if tax_id is not None else None
        if row is None and tax_name:
            row = self.taxes_by_name.get(_tax_key(tax_name))
        return row

    def tracking(self, option_id: Any) -> TrackingChoice | None:
        """The tracking option with this id, if Xero still has it active."""
        return self.tracking_options.get(str(option_id)) if option_id else None


@dataclass(frozen=True)
class XeroRefs:
    """What the organisation has: active account codes and tax types (None = not known, so not checked)."""

    account_codes: frozenset[str] | None = None
    tax_types: frozenset[str] | None = None
    #: Percentage rate of each tax type (Xero's EffectiveRate), used to compute the total Xero will show.
    tax_rates: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    #: Codes Xero has but that are archived or deleted (to explain why a mapped account is refused).
    archived_account_codes: frozenset[str] = frozenset()
    archived_tax_types: frozenset[str] = frozenset()

    @classmethod
    def from_rows(cls, accounts: Iterable[Any] = (), tax_rates: Iterable[Any] = ()) -> XeroRefs:
        """Build from account rows (code, status) and tax-rate rows (tax_type, status, effective_rate)."""
        active, archived = set(), set()
        for row in accounts:
            code = _opt(_get(row, "code") or _get(row, "Code"))
            if code is None:
                continue
            status = _opt(_get(row, "status") or _get(row, "Status")) or "ACTIVE"
            (active if status == "ACTIVE" else archived).add(code)
        taxes, archived_taxes, rates = set(), set(), {}
        for row in tax_rates:
            tax_type = _opt(_get(row, "tax_type") or _get(row, "TaxType"))
            if tax_type is None:
                continue
            status = _opt(_get(row, "status") or _get(row, "Status")) or "ACTIVE"
            (taxes if status == "ACTIVE" else archived_taxes).add(tax_type)
            rate = as_decimal(_get(row, "effective_rate") if _get(row, "effective_rate") is not None
                              else _get(row, "EffectiveRate"))
            if rate is not None:
                rates[tax_type] = rate
        return cls(frozenset(active), frozenset(taxes), MappingProxyType(rates), frozenset(archived - active),
                   frozenset(archived_taxes - taxes))

    def account_problem(self, code: str) -> str | None:
        """Why Xero would refuse this account code ("archived", "not found"), or None when it is usable."""
        if self.account_codes is None or code in self.account_codes:
            return None
        return "is archived or deleted in Xero" if code in self.archived_account_codes else \
            "is not in Xero's chart of accounts"

    def tax_problem(self, tax_type: str) -> str | None:
        """Why Xero would refuse this tax type, or None when it is usable."""
        if self.tax_types is None or tax_type in self.tax_types:
            return None
        return "is archived or deleted in Xero" if tax_type in self.archived_tax_types else \
            "is not one of Xero's tax rates"

    def rate(self, tax_type: str) -> Decimal | None:
        """The percentage rate Xero applies for this tax type, when known."""
        return self.tax_rates.get(tax_type)
