"""Cliniko invoice + items → Xero ACCREC Invoice JSON, with the rule behind every field and a totals check."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from webapp.sync.mapping_common import (
    HUNDRED,
    ZERO,
    MappingError,
    as_decimal,
    business_name,
    clean_text,
    local_date,
    money_text,
    person_name,
    round2,
    round4,
    sha256_of,
    tidy,
    zone_of,
)
from webapp.sync.mapping_contacts import contact_number, patient_name
from webapp.sync.settings import MappingRow, Mappings, PracticeSettings, XeroRefs

INVOICE_NUMBER_LIMIT = 255
REFERENCE_LIMIT = 255
DESCRIPTION_LIMIT = 4000
ROUNDING_TAX_TYPE = "BASEXCLUDED"
PAID = 20
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RECHECK = "then re-queue the row."


@dataclass(frozen=True)
class InvoicePlan:
    """The Xero invoice to send, why each field has its value, and the totals check."""

    payload: dict
    reasons: list[dict]
    dropped_lines: list[dict]
    cliniko_total: Decimal
    xero_total: Decimal
    rounding: Decimal
    invoice_number: str = ""


@dataclass(frozen=True)
class SkipPlan:
    """A filter says this invoice is not sent; `reason` is shown to people."""

    reason: str
    dropped_lines: list[dict] = field(default_factory=list)


def invoice_number(settings: PracticeSettings, number: Any) -> str:
    """Xero's InvoiceNumber for a Cliniko invoice number: the practice prefix + the number."""
    text = clean_text(number)
    if not text:
        raise MappingError("mapping", "The invoice has no number in Cliniko, so it has no key in Xero.",
                           f"Check the invoice in Cliniko, {_RECHECK}")
    return f"{settings.invoice_number_prefix}{text}"[:INVOICE_NUMBER_LIMIT]


def payload_hash(payload: dict) -> str:
    """sha256 of the payload's canonical JSON (sorted keys, Decimals as strings): detects what Xero would see change."""
    return sha256_of(payload)


# -- Xero's arithmetic -------------------------------------------------------------------------------------------


def xero_line(quantity: Decimal, unit_amount: Decimal, tax_rate: Decimal, line_amount_types: str, *,
              discount_rate: Decimal | None = None, discount_amount: Decimal | None = None) -> tuple[Decimal, Decimal]:
    """(LineAmount, TaxAmount) as Xero computes them with unitdp=4: amounts and per-line tax rounded to cents."""
    gross = round4(quantity) * round4(unit_amount)
    if discount_rate is not None:
        line_amount = round2(gross * (HUNDRED - discount_rate) / HUNDRED)
    elif discount_amount is not None:
        line_amount = round2(gross - round2(discount_amount))
    else:
        line_amount = round2(gross)
    if line_amount_types == "Inclusive":
        tax = round2(line_amount * tax_rate / (HUNDRED + tax_rate))
    else:
        tax = round2(line_amount * tax_rate / HUNDRED)
    return line_amount, tax


def xero_total(lines: list[tuple[Decimal, Decimal]], line_amount_types: str) -> Decimal:
    """The invoice Total Xero shows: Σ line amounts (+ Σ per-line tax when amounts exclude tax)."""
    amounts = sum((amount for amount, _ in lines), ZERO)
    tax = sum((t for _, t in lines), ZERO)
    return amounts if line_amount_types == "Inclusive" else amounts + tax


def cliniko_line_total(item: dict) -> Decimal | None:
    """An item's tax-inclusive total: Cliniko's `total_including_tax`, else recomputed with Cliniko's arithmetic."""
    total = as_decimal(item.get("total_including_tax"))
    if total is not None:
        return total
    unit, quantity = as_decimal(item.get("unit_price")), as_decimal(item.get("quantity"))
    if unit is None or quantity is None:
        return None
    rate = as_decimal(item.get("tax_rate")) or ZERO
    gross = unit * quantity * (1 + rate / HUNDRED)
    monetary, pct, amount = _discount(item)
    discounted = amount if monetary else round2(gross * pct / HUNDRED)
    return round2(gross - discounted)


def _discount(item: dict) -> tuple[bool, Decimal, Decimal]:
    """(monetary?, percentage, tax-inclusive monetary amount) of an item's discount."""
    pct = as_decimal(item.get("discount_percentage")) or ZERO
    amount = as_decimal(item.get("discounted_amount"))
    monetary = bool(item.get("is_monetary_discount")) and amount is not None
    return monetary, pct, amount if amount is not None else ZERO


# -- rules ---------------------------------------------------------------------------------------------------------


@dataclass
class _Context:
    invoice: dict
    settings: PracticeSettings
    mappings: Mappings
    refs: XeroRefs
    practitioner: dict | None
    business: dict | None
    practitioner_label: str
    business_label: str
    appointment_date: str
    reasons: list[dict] = field(default_factory=list)

    def reason(self, line: int | None, field_name: str, value: Any, rule: str) -> None:
        self.reasons.append({"line": line, "field": field_name, "value": value, "rule": rule})


def _row_label(row: MappingRow | None, fallback: str, kind: str, cliniko_id: Any) -> str:
    name = clean_text(row.cliniko_name) if row and row.cliniko_name else fallback
    return name or f"#{cliniko_id}"


def _item_kind(item: dict) -> tuple[str, str | None]:
    if item.get("product_id"):
        return "product", str(item["product_id"])
    return "billable_item", str(item["billable_item_id"]) if item.get("billable_item_id") else None


def _account(ctx: _Context, item: dict, item_name: str) -> tuple[str, str]:
    kind, item_id = _item_kind(item)
    invoice = ctx.invoice
    candidates: list[tuple[MappingRow | None, str, str]] = []
    item_row = ctx.mappings.get(kind, item_id)
    label = _row_label(item_row, item_name, kind, item_id)
    candidates.append((item_row, f"{kind.replace('_', ' ')} '{label}' override",
                       f"{kind.replace('_', ' ')} '{label}'"))
    prac_row = ctx.mappings.get("practitioner", invoice.get("practitioner_id"))
    prac = _row_label(prac_row, ctx.practitioner_label, "practitioner", invoice.get("practitioner_id"))
    candidates.append((prac_row, f"practitioner '{prac}' override", f"practitioner '{prac}'"))
    bus_row = ctx.mappings.get("business", invoice.get("business_id"))
    bus = _row_label(bus_row, ctx.business_label, "business", invoice.get("business_id"))
    candidates.append((bus_row, f"business '{bus}' override", f"business '{bus}'"))
    for row, rule, who in candidates:
        if row is not None and row.account_code:
            problem = ctx.refs.account_problem(row.account_code)
            if problem:
                raise MappingError("mapping", f"Account {row.account_code}, chosen for {who}, {problem}.",
                                   f"Choose an active account for {who} in Mappings, {_RECHECK}")
            return row.account_code, rule
    code = ctx.settings.sales_account
    if not code:
        raise MappingError("mapping", f"No Xero account for '{item_name}': no override applies and no default "
                           "sales account is set.", f"Choose a default sales account in Settings, {_RECHECK}")
    problem = ctx.refs.account_problem(code)
    if problem:
        raise MappingError("mapping", f"The default sales account {code} {problem}.",
                           f"Choose an active default sales account in Settings, {_RECHECK}")
    return code, "default sales account"


def _tax(ctx: _Context, item: dict, item_name: str) -> tuple[str, str, Decimal, str | None]:
    """(TaxType, rule, the rate Xero will apply, the unmapped Cliniko tax's name when taxed but unmapped)."""
    tax_name = clean_text(item.get("tax_name"))
    tax_id = item.get("tax_id")
    cliniko_rate = as_decimal(item.get("tax_rate")) or ZERO
    has_tax = bool(tax_name or tax_id) or cliniko_rate != 0
    label = tax_name or (f"#{tax_id}" if tax_id else f"{tidy(cliniko_rate, 0)}%")
    row = ctx.mappings.tax(tax_id, tax_name) if has_tax else None
    unmapped = None
    if row is not None and row.tax_type:
        tax_type, rule = row.tax_type, f"Cliniko tax '{label}' mapped"
        where = f"Cliniko tax '{label}' in Mappings"
    else:
        tax_type = ctx.settings.tax_exempt
        if not tax_type:
            what = f"Cliniko tax '{label}', which is not mapped," if has_tax else "no tax"
            raise MappingError("mapping", f"Line '{item_name}' has {what} and no tax-exempt rate is set.",
                               (f"Map Cliniko tax '{label}' to a Xero tax rate in Mappings, or " if has_tax
                                else "") + f"choose a tax-exempt rate in Settings, {_RECHECK}")
        rule = (f"unmapped tax '{label}' → tax-exempt rate {tax_type}" if has_tax
                else f"no tax on line → tax-exempt rate {tax_type}")
        where = "the tax-exempt rate in Settings"
        if has_tax and cliniko_rate != 0:
            unmapped = label
    problem = ctx.refs.tax_problem(tax_type)
    if problem:
        raise MappingError("mapping", f"Tax rate {tax_type}, chosen for line '{item_name}', {problem}.",
                           f"Choose an active tax rate for {where}, {_RECHECK}")
    rate = ctx.refs.rate(tax_type)
    if rate is None:
        # Xero's rate is unknown (settings not read yet): assume the mapped rate charges what Cliniko charged.
        rate = cliniko_rate if row is not None and row.tax_type else ZERO
    return tax_type, rule, rate, unmapped


def _tracking(ctx: _Context) -> list[dict]:
    invoice = ctx.invoice
    chosen: list[tuple[str, Any]] = []
    for kind, key, label in (("business", "business_id", ctx.business_label),
                             ("practitioner", "practitioner_id", ctx.practitioner_label)):
        row = ctx.mappings.get(kind, invoice.get(key))
        if row is None or not row.tracking_option_id:
            continue
        who = f"{kind} '{_row_label(row, label, kind, invoice.get(key))}'"
        choice = ctx.mappings.tracking(row.tracking_option_id)
        if choice is None:
            raise MappingError("mapping", f"The tracking option chosen for {who} is no longer active in Xero.",
                               f"Choose an active tracking option for {who} in Mappings, {_RECHECK}")
        chosen.append((who, choice))
    if len(chosen) == 2 and (chosen[0][1].category_id == chosen[1][1].category_id
                             or chosen[0][1].category_name == chosen[1][1].category_name):
        raise MappingError(
            "mapping",
            f"{chosen[0][0].capitalize()} and {chosen[1][0]} both set tracking category "
            f"'{chosen[0][1].category_name}'; a Xero line can use each category only once.",
            f"Use different tracking categories for businesses and practitioners in Mappings, {_RECHECK}")
    tracking = []
    for who, choice in chosen:
        tracking.append({"Name": choice.category_name, "Option": choice.option_name})
        ctx.reason(None, "Tracking", f"{choice.category_name}: {choice.option_name}", f"{who} tracking")
    return tracking


def _render(template: str, values: dict[str, str], limit: int) -> str:
    try:
        return clean_text(template.format_map(values), limit)
    except (KeyError, ValueError, IndexError, AttributeError):
        raise MappingError("mapping", f"The template {template!r} uses a placeholder the sync does not know.",
                           f"Correct the template in Settings, {_RECHECK}") from None


def _candidates(quantity: Decimal, unit_price: Decimal, cliniko_rate: Decimal, xero_rate: Decimal, mode: str,
                item: dict, target: Decimal | None) -> list[tuple[Decimal, Decimal | None, Decimal | None, str]]:
    """Ways to express the line in Xero, most natural first: (UnitAmount, DiscountRate, DiscountAmount, rule)."""
    monetary, pct, amount = _discount(item)
    inclusive = mode == "Inclusive"
    unit = round4(unit_price * (1 + cliniko_rate / HUNDRED)) if inclusive else round4(unit_price)
    if monetary and amount != 0:
        found: list[tuple[Decimal, Decimal | None, Decimal | None, str]] = []
        rule = f"Cliniko monetary discount {money_text(amount)} (tax-inclusive)"
        gross = round4(quantity) * unit
        if inclusive:
            # Inclusive amounts: Cliniko's tax-inclusive discount is exactly what Xero subtracts.
            found.append((unit, None, round2(amount), rule))
            if target is not None:
                found.append((unit, None, round2(gross - target), rule + ", adjusted to Cliniko's line total"))
        elif target is not None:
            # Exclusive amounts: Xero subtracts the discount before tax, so send the ex-tax amount that makes
            # Xero's line amount + its rounded tax equal Cliniko's tax-inclusive line total.
            # Cliniko's own rate gives the true ex-tax amount; a Xero rate that differs shows up in the totals check.
            base = round2(target * HUNDRED / (HUNDRED + cliniko_rate))
            for step in (ZERO, Decimal("-0.01"), Decimal("0.01")):
                found.append((unit, None, round2(gross - (base + step)), rule + " sent ex-tax"))
        found.append((unit, pct, None, f"Cliniko monetary discount as its percentage {tidy(pct, 0)}%"))
        return found
    if pct != 0:
        return [(unit, pct, None, f"Cliniko percentage discount {tidy(pct, 0)}%")]
    return [(unit, None, None, "")]


def _choose(quantity: Decimal, cliniko_rate: Decimal, xero_rate: Decimal, mode: str, item: dict,
            unit_price: Decimal, target: Decimal | None) -> tuple[tuple, tuple[Decimal, Decimal]]:
    options = _candidates(quantity, unit_price, cliniko_rate, xero_rate, mode, item, target)
    computed = []
    for option in options:
        unit, rate, amount, _ = option
        if rate is not None and not ZERO <= rate <= HUNDRED:
            continue
        result = xero_line(quantity, unit, xero_rate, mode, discount_rate=rate, discount_amount=amount)
        if target is not None and xero_total([result], mode) == target:
            return option, result
        computed.append((option, result))
    if not computed:
        raise MappingError("totals", f"The line's discount of {tidy(options[0][1] or ZERO, 0)}% cannot be sent to "
                           "Xero (it must be between 0 and 100).", f"Correct the discount in Cliniko, {_RECHECK}")
    return computed[0]


def _skip_filters(invoice: dict, settings: PracticeSettings, practitioner_label: str,
                  business_label: str) -> str | None:
    issue = invoice.get("issue_date")
    if settings.sync_from and isinstance(issue, date) and issue < settings.sync_from:
        return f"Issued {issue.isoformat()}, before the sync-from date {settings.sync_from.isoformat()}."
    if invoice.get("business_id") and str(invoice["business_id"]) in settings.exclude_businesses:
        return f"Business '{business_label or invoice['business_id']}' is excluded in Settings."
    if invoice.get("practitioner_id") and str(invoice["practitioner_id"]) in settings.exclude_practitioners:
        return f"Practitioner '{practitioner_label or invoice['practitioner_id']}' is excluded in Settings."
    if settings.only_paid and str(invoice.get("status")) != str(PAID):
        state = clean_text(invoice.get("status_description")) or "not paid"
        return f"Only paid invoices are sent (Settings), and this invoice is {state}."
    return None


def _drop_reason(item: dict, invoice: dict, settings: PracticeSettings, name: str) -> str | None:
    if item.get("deleted_at"):
        return "deleted in Cliniko"
    if item.get("invoice_id") and invoice.get("id") and str(item["invoice_id"]) != str(invoice["id"]):
        return "belongs to another invoice"
    if item.get("product_id") and str(item["product_id"]) in settings.exclude_products:
        return f"product '{name}' is excluded in Settings"
    if item.get("billable_item_id") and str(item["billable_item_id"]) in settings.exclude_billable_items:
        return f"billable item '{name}' is excluded in Settings"
    quantity = as_decimal(item.get("quantity"))
    if quantity is not None and quantity == 0:
        return "quantity is 0"
    return None


def plan_invoice(invoice: dict, items: list[dict], *, patient: dict | None, practitioner: dict | None,
                 business: dict | None, appointment: dict | None, settings: PracticeSettings, mappings: Mappings,
                 refs: XeroRefs, contact_id_or_number: Any = None) -> InvoicePlan | SkipPlan:
    """Plan the Xero invoice for a Cliniko invoice, or say why it is skipped; MappingError when it cannot be right."""
    invoice = invoice if isinstance(invoice, dict) else {}
    items = [i for i in (items or []) if isinstance(i, dict)]
    practitioner_label = person_name(practitioner)
    business_label = business_name(business)
    skip = _skip_filters(invoice, settings, practitioner_label, business_label)
    if skip:
        return SkipPlan(skip)

    number = invoice_number(settings, invoice.get("number"))
    issue = invoice.get("issue_date")
    if not isinstance(issue, date):
        raise MappingError("mapping", f"Invoice {number} has no issue date in Cliniko.",
                           f"Check the invoice's date in Cliniko, {_RECHECK}")
    zone, _ = zone_of(business, settings.time_zone)
    appt_date = local_date((appointment or {}).get("starts_at") if isinstance(appointment, dict) else None, zone)
    ctx = _Context(invoice, settings, mappings, refs, practitioner, business, practitioner_label, business_label,
                   appt_date.isoformat() if appt_date else "")

    # Decide which lines go, before anything else, so that excluded lines never need a mapping.
    kept: list[tuple[dict, str]] = []
    dropped: list[dict] = []
    dropped_total = ZERO
    for item in items:
        name = clean_text(item.get("name"), DESCRIPTION_LIMIT) or clean_text(item.get("code")) or "Cliniko item"
        why = _drop_reason(item, invoice, settings, name)
        if why is None:
            kept.append((item, name))
            continue
        dropped.append({"item_id": item.get("id"), "name": name, "reason": why})
        if why != "deleted in Cliniko" and why != "belongs to another invoice":
            dropped_total += cliniko_line_total(item) or ZERO
    if not kept:
        if dropped:
            return SkipPlan("Every line is excluded: " + "; ".join(f"'{d['name']}' {d['reason']}" for d in dropped)
                            + ".", dropped)
        total = as_decimal(invoice.get("total_amount"))
        if total is None or total == 0:
            return SkipPlan("The invoice has no items in Cliniko.")
        raise MappingError("totals", f"Invoice {number} has a total of {money_text(total)} but Cliniko sent no items "
                           "for it.", f"Open the invoice in Cliniko and check its items, {_RECHECK}")

    mode = settings.line_amount_types
    line_totals: list[Decimal | None] = [cliniko_line_total(item) for item, _ in kept]
    invoice_total = as_decimal(invoice.get("total_amount"))
    if invoice_total is None:
        if any(t is None for t in line_totals):
            raise MappingError("totals", f"Invoice {number} has no total in Cliniko and its items' totals cannot be "
                               "worked out.", f"Open the invoice in Cliniko and check it, {_RECHECK}")
        expected = sum((t for t in line_totals if t is not None), ZERO)
        ctx.reason(None, "Total", expected, "Cliniko sent no invoice total: the sum of its items is used")
    else:
        expected = invoice_total - dropped_total
    if expected < 0:
        return SkipPlan(f"The invoice total is {money_text(expected)} (a credit or reversal); Xero invoices cannot be "
                        "negative, so record the refund as a credit note in Xero.", dropped)
    if expected == 0 and settings.skip_zero_total:
        return SkipPlan("Zero-total invoices are skipped (Settings).", dropped)

    contact = _contact(invoice, settings, contact_id_or_number)
    pname, _, _ = patient_name(patient)
    values = {"number": clean_text(invoice.get("number")), "patient": pname, "practitioner": practitioner_label,
              "business": business_label, "appointment_date": ctx.appointment_date}
    reference = _render(settings.reference_template, values, REFERENCE_LIMIT)
    tracking = _tracking(ctx)

    lines: list[dict] = []
    computed: list[tuple[Decimal, Decimal]] = []
    unmapped_taxes: list[str] = []
    rate_mismatch: list[str] = []
    for index, ((item, name), target) in enumerate(zip(kept, line_totals, strict=True)):
        quantity, unit_price = as_decimal(item.get("quantity")), as_decimal(item.get("unit_price"))
        if quantity is None:
            raise MappingError("totals", f"Line '{name}' has no quantity in Cliniko.",
                               f"Open invoice {number} in Cliniko and check the item, {_RECHECK}")
        if unit_price is None:
            raise MappingError("totals", f"Line '{name}' has no unit price in Cliniko.",
                               f"Open invoice {number} in Cliniko and check the item, {_RECHECK}")
        account, account_rule = _account(ctx, item, name)
        tax_type, tax_rule, xero_rate, unmapped = _tax(ctx, item, name)
        cliniko_rate = as_decimal(item.get("tax_rate")) or ZERO
        if unmapped:
            unmapped_taxes.append(unmapped)
        elif xero_rate != cliniko_rate and cliniko_rate != 0:
            rate_mismatch.append(f"'{clean_text(item.get('tax_name')) or name}' is {tidy(cliniko_rate, 0)}% in "
                                 f"Cliniko but {tax_type} is {tidy(xero_rate, 0)}% in Xero")
        (unit, discount_rate, discount_amount, discount_rule), result = _choose(
            quantity, cliniko_rate, xero_rate, mode, item, unit_price, target)
        values = {"item": name, "code": clean_text(item.get("code")), "practitioner": practitioner_label,
                  "appointment_date": ctx.appointment_date}
        description = _render(settings.line_description_template, values, DESCRIPTION_LIMIT) or name
        line: dict[str, Any] = {"Description": description, "Quantity": tidy(round4(quantity), 0),
                                "UnitAmount": tidy(unit)}
        if discount_rate is not None:
            line["DiscountRate"] = tidy(discount_rate, 0)
            ctx.reason(index, "DiscountRate", line["DiscountRate"], discount_rule)
        if discount_amount is not None:
            line["DiscountAmount"] = round2(discount_amount)
            ctx.reason(index, "DiscountAmount", line["DiscountAmount"], discount_rule)
        line["AccountCode"] = account
        line["TaxType"] = tax_type
        if tracking:
            line["Tracking"] = [dict(t) for t in tracking]
        ctx.reason(index, "AccountCode", account, account_rule)
        ctx.reason(index, "TaxType", tax_type, tax_rule)
        if mode == "Inclusive" and cliniko_rate:
            ctx.reason(index, "UnitAmount", line["UnitAmount"],
                       f"Cliniko's ex-tax price {tidy(unit_price)} + {tidy(cliniko_rate, 0)}% tax (amounts Inclusive)")
        if round4(quantity) != quantity:
            ctx.reason(index, "Quantity", line["Quantity"], "rounded to 4 decimal places, Xero's limit")
        if quantity < 0:
            ctx.reason(index, "Quantity", line["Quantity"], "negative quantity kept (a reversed item)")
        lines.append(line)
        computed.append(result)

    before = xero_total(computed, mode)
    difference = expected - before
    rounding = ZERO
    if difference != 0:
        if abs(difference) > settings.rounding_tolerance:
            raise MappingError("totals", f"Totals differ: Cliniko {money_text(expected)}, Xero would compute "
                               f"{money_text(before)}", _totals_fix(unmapped_taxes, rate_mismatch, number))
        rounding = difference
        lines.append(_rounding_line(ctx, difference, number, expected, before))
        computed.append((difference, ZERO))
    final = xero_total(computed, mode)

    payload: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": contact,
        "InvoiceNumber": number,
        "Date": issue.isoformat(),
        "DueDate": (issue + timedelta(days=settings.due_days)).isoformat(),
        "Status": settings.invoice_status,
        "LineAmountTypes": mode,
        "LineItems": lines,
    }
    if reference:
        payload["Reference"] = reference
    ctx.reasons[:0] = [
        {"line": None, "field": "InvoiceNumber", "value": number,
         "rule": f"prefix '{settings.invoice_number_prefix}' + Cliniko number"},
        {"line": None, "field": "DueDate", "value": payload["DueDate"],
         "rule": f"issue date + {settings.due_days} days"},
        {"line": None, "field": "Reference", "value": reference or None,
         "rule": f"template '{settings.reference_template}'"},
        {"line": None, "field": "Status", "value": settings.invoice_status, "rule": "invoice status setting"},
        {"line": None, "field": "LineAmountTypes", "value": mode, "rule": "line amount types setting"},
    ]
    return InvoicePlan(payload=payload, reasons=ctx.reasons, dropped_lines=dropped, cliniko_total=expected,
                       xero_total=final, rounding=rounding, invoice_number=number)


def _contact(invoice: dict, settings: PracticeSettings, given: Any) -> dict:
    if isinstance(given, dict) and (given.get("ContactID") or given.get("ContactNumber")):
        return {k: v for k, v in given.items() if k in ("ContactID", "ContactNumber") and v}
    if isinstance(given, str) and given.strip():
        value = given.strip()
        return {"ContactID": value} if _UUID.match(value) else {"ContactNumber": value}
    if not invoice.get("patient_id"):
        raise MappingError("mapping", "The invoice has no patient in Cliniko, so there is no Xero contact for it.",
                           f"Check the invoice's patient in Cliniko, {_RECHECK}")
    return {"ContactNumber": contact_number(settings, invoice["patient_id"])}


def _rounding_line(ctx: _Context, difference: Decimal, number: str, expected: Decimal, before: Decimal) -> dict:
    account = ctx.settings.rounding_account
    if not account:
        raise MappingError("mapping", f"Invoice {number} needs a rounding line of {money_text(difference)} (Cliniko "
                           f"{money_text(expected)}, Xero would compute {money_text(before)}), but no rounding "
                           "account is set.", "Choose a rounding account in Settings (Xero's system Rounding "
                           f"account), {_RECHECK}")
    problem = ctx.refs.account_problem(account)
    if problem:
        raise MappingError("mapping", f"The rounding account {account} {problem}.",
                           f"Choose an active rounding account in Settings, {_RECHECK}")
    tax_types = ctx.refs.tax_types
    if tax_types is None or ROUNDING_TAX_TYPE in tax_types:
        tax_type = ROUNDING_TAX_TYPE
    elif ctx.settings.tax_exempt and ctx.settings.tax_exempt in tax_types:
        tax_type = ctx.settings.tax_exempt
    else:
        raise MappingError("mapping", f"Invoice {number} needs a rounding line but Xero has neither "
                           f"{ROUNDING_TAX_TYPE} nor an active tax-exempt rate for it.",
                           f"Choose an active tax-exempt rate in Settings, {_RECHECK}")
    index = sum(1 for r in ctx.reasons if r["field"] == "AccountCode")
    ctx.reason(index, "AccountCode", account, "rounding account")
    ctx.reason(index, "UnitAmount", difference,
               f"rounding: Cliniko {money_text(expected)} − Xero {money_text(before)}, within "
               f"{money_text(ctx.settings.rounding_tolerance)}")
    ctx.reason(index, "TaxType", tax_type, "rounding lines carry no tax")
    return {"Description": "Rounding", "Quantity": Decimal("1"), "UnitAmount": difference,
            "AccountCode": account, "TaxType": tax_type}


def _totals_fix(unmapped: list[str], mismatch: list[str], number: str) -> str:
    if unmapped:
        names = ", ".join(f"'{n}'" for n in dict.fromkeys(unmapped))
        return (f"Cliniko charged tax {names} but it is not mapped, so Xero would charge none. Map {names} to a "
                f"Xero tax rate in Mappings, {_RECHECK}")
    if mismatch:
        return (f"Tax rates differ: {'; '.join(dict.fromkeys(mismatch))}. Map the Cliniko tax to a Xero rate with "
                f"the same percentage, {_RECHECK}")
    return (f"Open invoice {number} in Cliniko and check its items and discounts (or raise the rounding tolerance "
            f"in Settings), {_RECHECK}")


def explain(plan: InvoicePlan | SkipPlan | MappingError) -> list[str]:
    """Human-readable lines saying what will be sent and which rule chose each account, tax type and tracking."""
    if isinstance(plan, MappingError):
        return [f"Not sent ({plan.category}): {plan.reason}", f"Fix: {plan.fix}"]
    if isinstance(plan, SkipPlan):
        out = [f"Skipped: {plan.reason}"]
        out += [f"Dropped '{d['name']}': {d['reason']}" for d in plan.dropped_lines]
        return out
    payload = plan.payload
    contact = payload["Contact"].get("ContactNumber") or payload["Contact"].get("ContactID")
    out = [f"Invoice {payload['InvoiceNumber']} for contact {contact}: {payload['Status']}, dated {payload['Date']}, "
           f"due {payload['DueDate']}, amounts {payload['LineAmountTypes']} of tax."]
    if payload.get("Reference"):
        out.append(f"Reference: {payload['Reference']}")
    for index, line in enumerate(payload["LineItems"]):
        out.append(f"Line {index + 1} '{line['Description']}': {line['Quantity']} × {line['UnitAmount']}")
        for reason in plan.reasons:
            if reason["line"] == index:
                out.append(f"  {reason['field']} {reason['value']}: {reason['rule']}")
    for reason in plan.reasons:
        if reason["line"] is None and reason["field"] in ("Tracking", "Total"):
            out.append(f"{reason['field']} {reason['value']}: {reason['rule']}")
    out += [f"Dropped '{d['name']}': {d['reason']}" for d in plan.dropped_lines]
    total = f"Cliniko total {money_text(plan.cliniko_total)}; Xero will compute {money_text(plan.xero_total)}"
    out.append(total + (f" (with a rounding line of {money_text(plan.rounding)})" if plan.rounding else "") + ".")
    return out
