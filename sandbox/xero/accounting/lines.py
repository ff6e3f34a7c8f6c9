"""Line items: amounts, discounts, per-line tax rounding, account/tax/tracking validation."""

import uuid
from decimal import Decimal

from sandbox.xero.money import ZERO, round2, round_dp, stored, to_decimal

LINE_AMOUNT_TYPES = {"exclusive": "Exclusive", "inclusive": "Inclusive", "notax": "NoTax"}
_CLASS_TO_APPLIES = {
    "REVENUE": "revenue",
    "EXPENSE": "expenses",
    "ASSET": "assets",
    "LIABILITY": "liabilities",
    "EQUITY": "equity",
}
SALES_TYPES = ("ACCREC", "ACCRECCREDIT")


def resolve_account(org, code: str | None, account_id: str | None, errors: list[str]) -> dict | None:
    """Find an active account by code or id, adding Xero's message when it is unknown or archived."""
    account = org.account(code=code, account_id=account_id)
    label = code if code else account_id
    if account is None:
        errors.append(f"Account code {label} is not a valid code for this document.")
        return None
    if account["Status"] != "ACTIVE":
        errors.append("Account code has been archived or deleted")
        return None
    return account


def _tracking(org, raw_tracking, errors: list[str]) -> list[dict]:
    if not raw_tracking:
        return []
    if not isinstance(raw_tracking, list):
        errors.append("Tracking must be a list of tracking categories")
        return []
    if len(raw_tracking) > 2:
        errors.append("A line item can only have a maximum of 2 tracking categories")
        return []
    result, seen = [], set()
    categories = org.data["tracking_categories"]
    for item in raw_tracking:
        item = item if isinstance(item, dict) else {}
        category = None
        if item.get("TrackingCategoryID"):
            category = next(
                (c for c in categories if c["TrackingCategoryID"] == str(item["TrackingCategoryID"]).lower()),
                None,
            )
        elif item.get("Name"):
            wanted = str(item["Name"]).strip().lower()
            category = next(
                (c for c in categories if c["Name"].lower() == wanted and c["Status"] == "ACTIVE"), None
            ) or next((c for c in categories if c["Name"].lower() == wanted), None)
        label = item.get("Name") or item.get("TrackingCategoryID") or ""
        if category is None:
            errors.append(f"The tracking category '{label}' does not exist.")
            continue
        if category["Status"] != "ACTIVE":
            errors.append(f"The tracking category '{category['Name']}' is archived and cannot be used.")
            continue
        if category["TrackingCategoryID"] in seen:
            errors.append(f"The tracking category '{category['Name']}' is used more than once on a line item.")
            continue
        seen.add(category["TrackingCategoryID"])
        option = None
        if item.get("TrackingOptionID"):
            option = next(
                (o for o in category["Options"] if o["TrackingOptionID"] == str(item["TrackingOptionID"]).lower()),
                None,
            )
        elif item.get("Option"):
            wanted = str(item["Option"]).strip().lower()
            option = next((o for o in category["Options"] if o["Name"].lower() == wanted), None)
        option_label = item.get("Option") or item.get("TrackingOptionID") or ""
        if option is None:
            errors.append(
                f"The tracking option '{option_label}' does not exist for tracking category '{category['Name']}'."
            )
            continue
        if option["Status"] != "ACTIVE":
            errors.append(f"The tracking option '{option['Name']}' is archived and cannot be used.")
            continue
        result.append(
            {
                "TrackingCategoryID": category["TrackingCategoryID"],
                "TrackingOptionID": option["TrackingOptionID"],
                "Name": category["Name"],
                "Option": option["Name"],
            }
        )
    return result


def build_line(
    org,
    raw,
    doc_type: str,
    line_amount_types: str,
    unitdp: int,
    require_account: bool,
    errors: list[str],
    existing: dict | None = None,
) -> dict:
    """Validate one request line and compute its amounts; messages go to `errors`."""
    raw = raw if isinstance(raw, dict) else {}
    line = {"LineItemID": (existing or {}).get("LineItemID") or str(uuid.uuid4())}
    description = raw.get("Description")
    line["Description"] = description if isinstance(description, str) else ""
    if raw.get("ItemCode"):
        errors.append(f"Item code '{raw['ItemCode']}' is not valid")
    try:
        quantity = round_dp(to_decimal(raw.get("Quantity"), Decimal("1")), 4)
    except ValueError:
        errors.append("Quantity must be a number")
        quantity = Decimal("1")
    unit_raw = raw.get("UnitAmount")
    try:
        if unit_raw is None and raw.get("LineAmount") is not None and quantity:
            unit = to_decimal(raw["LineAmount"]) / quantity
        else:
            unit = to_decimal(unit_raw, ZERO)
        unit = round_dp(unit, unitdp)
    except ValueError:
        errors.append("Unit amount must be a number")
        unit = ZERO
    gross = quantity * unit
    discount_rate = discount_amount = None
    try:
        if raw.get("DiscountRate") not in (None, ""):
            discount_rate = to_decimal(raw["DiscountRate"])
        if raw.get("DiscountAmount") not in (None, ""):
            discount_amount = round2(to_decimal(raw["DiscountAmount"]))
    except ValueError:
        errors.append("Discount must be a number")
    if (discount_rate is not None or discount_amount is not None) and doc_type not in SALES_TYPES:
        errors.append("Discounts can only be applied to sales invoices and credit notes")
        discount_rate = discount_amount = None
    if discount_rate is not None and not ZERO <= discount_rate <= Decimal("100"):
        errors.append("Discount rate must be between 0 and 100")
        discount_rate = None
    if discount_rate is not None:
        line_amount = round2(gross * (Decimal("100") - discount_rate) / Decimal("100"))
    elif discount_amount is not None:
        line_amount = round2(gross - discount_amount)
    else:
        line_amount = round2(gross)
    discount = round2(gross) - line_amount if (discount_rate is not None or discount_amount is not None) else ZERO

    account = None
    code, account_id = raw.get("AccountCode"), raw.get("AccountID")
    if code or account_id:
        account = resolve_account(org, code, account_id, errors)
        if account is not None and account["Type"] == "BANK":
            errors.append(f"Account code {account['Code']} is not a valid code for this document.")
            account = None
    elif require_account:
        errors.append("Account code must be specified")

    tax_type = raw.get("TaxType") or (account or {}).get("TaxType") or ""
    tax_amount = ZERO
    if tax_type:
        rate_record = org.tax_rate(tax_type)
        if rate_record is None or rate_record["Status"] != "ACTIVE":
            errors.append(f"The TaxType code {tax_type} does not exist or cannot be used for this type of transaction.")
        else:
            tax_type = rate_record["TaxType"]
            applies_to = _CLASS_TO_APPLIES.get((account or {}).get("Class", ""))
            if account is not None and applies_to not in rate_record["AppliesTo"]:
                errors.append(f"The TaxType code '{tax_type}' cannot be used with account code '{account['Code']}'.")
            rate = Decimal(rate_record["Rate"])
            if line_amount_types == "Exclusive":
                tax_amount = round2(line_amount * rate / Decimal("100"))
            elif line_amount_types == "Inclusive":
                tax_amount = round2(line_amount * rate / (Decimal("100") + rate))
    tracking = _tracking(org, raw.get("Tracking"), errors)

    line.update(
        {
            "Quantity": stored(quantity),
            "UnitAmount": stored(unit),
            "LineAmount": stored(line_amount),
            "TaxType": tax_type,
            "TaxAmount": stored(tax_amount),
            "Discount": stored(discount),
            "DiscountRate": stored(discount_rate) if discount_rate is not None else None,
            "DiscountAmount": stored(discount_amount) if discount_amount is not None else None,
            "AccountCode": (account or {}).get("Code") or (code if isinstance(code, str) else None),
            "AccountID": (account or {}).get("AccountID"),
            "Tracking": tracking,
        }
    )
    return line


def totals(lines: list[dict], line_amount_types: str) -> dict:
    """SubTotal, TotalTax, Total and TotalDiscount from computed lines (tax summed per line)."""
    line_sum = sum((Decimal(line["LineAmount"]) for line in lines), ZERO)
    tax = sum((Decimal(line["TaxAmount"]) for line in lines), ZERO)
    discount = sum((Decimal(line.get("Discount") or "0") for line in lines), ZERO)
    subtotal = line_sum - tax if line_amount_types == "Inclusive" else line_sum
    return {
        "SubTotal": stored(subtotal),
        "TotalTax": stored(tax),
        "Total": stored(subtotal + tax),
        "TotalDiscount": stored(discount),
        "IsDiscounted": bool(discount),
    }
