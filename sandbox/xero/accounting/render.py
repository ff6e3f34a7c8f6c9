"""State records → Xero's response shapes (field names of xero_accounting.yaml, `/Date()/` dates)."""

from sandbox.xero.dates import date_string, ms_date, ms_timestamp, parse_iso_date, timestamp_string
from sandbox.xero.money import as_number, dec, round_dp

ZERO_ID = "00000000-0000-0000-0000-000000000000"


def _dated(out: dict, name: str, iso: str | None) -> None:
    day = parse_iso_date(iso) if iso else None
    if day:
        out[name] = ms_date(day)
        out[f"{name}String"] = date_string(day)


def contact_ref(org, contact_id: str | None, fallback: dict | None = None) -> dict:
    """The Contact summary embedded in documents."""
    contact = org.contacts.get(contact_id or "")
    if contact is None:
        ref = {}
        for key in ("ContactID", "ContactNumber", "Name"):
            if isinstance((fallback or {}).get(key), str):
                ref[key] = fallback[key]
        ref.setdefault("ContactID", ZERO_ID)
        ref["HasValidationErrors"] = False
        return ref
    ref = {
        "ContactID": contact["ContactID"],
        "ContactStatus": contact["ContactStatus"],
        "Name": contact["Name"],
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "HasValidationErrors": False,
    }
    if contact.get("ContactNumber"):
        ref["ContactNumber"] = contact["ContactNumber"]
    return ref


def contact(record: dict) -> dict:
    """A full Contact."""
    out = {
        "ContactID": record["ContactID"],
        "ContactStatus": record["ContactStatus"],
        "Name": record["Name"],
        "EmailAddress": record.get("EmailAddress") or "",
        "BankAccountDetails": "",
        "Addresses": record.get("Addresses") or [],
        "Phones": record.get("Phones") or [],
        "UpdatedDateUTC": ms_timestamp(record["UpdatedMs"]),
        "ContactGroups": [],
        "IsSupplier": bool(record.get("IsSupplier")),
        "IsCustomer": bool(record.get("IsCustomer")),
        "SalesTrackingCategories": [],
        "PurchasesTrackingCategories": [],
        "ContactPersons": [],
        "HasAttachments": False,
        "HasValidationErrors": False,
    }
    for key in ("ContactNumber", "AccountNumber", "FirstName", "LastName", "TaxNumber", "CompanyNumber"):
        if record.get(key):
            out[key] = record[key]
    return out


def line_item(line: dict, unitdp: int) -> dict:
    """One LineItem; UnitAmount shown at 2 dp unless the request asked for unitdp=4."""
    out = {
        "LineItemID": line["LineItemID"],
        "Description": line.get("Description") or "",
        "Quantity": as_number(line["Quantity"]),
        "UnitAmount": float(round_dp(dec(line["UnitAmount"]), unitdp)),
        "TaxType": line.get("TaxType") or "",
        "TaxAmount": as_number(line["TaxAmount"]),
        "LineAmount": as_number(line["LineAmount"]),
        "Tracking": [dict(t) for t in line.get("Tracking") or []],
        "ValidationErrors": [],
    }
    if line.get("AccountCode"):
        out["AccountCode"] = line["AccountCode"]
    if line.get("AccountID"):
        out["AccountID"] = line["AccountID"]
    if line.get("DiscountRate") is not None:
        out["DiscountRate"] = as_number(line["DiscountRate"])
    if line.get("DiscountAmount") is not None:
        out["DiscountAmount"] = as_number(line["DiscountAmount"])
    return out


def payment_ref(payment: dict) -> dict:
    """The short payment form listed inside an invoice."""
    out = {
        "PaymentID": payment["PaymentID"],
        "Amount": as_number(payment["Amount"]),
        "CurrencyRate": 1.0,
        "HasAccount": False,
        "HasValidationErrors": False,
    }
    _dated(out, "Date", payment["Date"])
    out.pop("DateString", None)
    if payment.get("Reference"):
        out["Reference"] = payment["Reference"]
    return out


def invoice(org, record: dict, lines: bool = True, unitdp: int = 2) -> dict:
    """A full Invoice (lines optional, as Xero omits them from unpaged lists)."""
    payments = [org.payments[pid] for pid in record.get("PaymentIDs", []) if pid in org.payments]
    out = {
        "Type": record["Type"],
        "InvoiceID": record["InvoiceID"],
        "InvoiceNumber": record.get("InvoiceNumber") or "",
        "Reference": record.get("Reference") or "",
        "Payments": [payment_ref(p) for p in payments if p["Status"] == "AUTHORISED"],
        "CreditNotes": [],
        "Prepayments": [],
        "Overpayments": [],
        "AmountDue": as_number(record["AmountDue"]),
        "AmountPaid": as_number(record["AmountPaid"]),
        "AmountCredited": as_number(record.get("AmountCredited")),
        "CurrencyRate": as_number(record.get("CurrencyRate") or "1"),
        "IsDiscounted": bool(record.get("IsDiscounted")),
        "HasAttachments": False,
        "HasErrors": False,
        "Contact": contact_ref(org, record.get("ContactID"), record.get("ContactEcho")),
        "Status": record["Status"],
        "LineAmountTypes": record["LineAmountTypes"],
        "SubTotal": as_number(record["SubTotal"]),
        "TotalTax": as_number(record["TotalTax"]),
        "Total": as_number(record["Total"]),
        "UpdatedDateUTC": ms_timestamp(record["UpdatedMs"]),
        "UpdatedDateUTCString": timestamp_string(record["UpdatedMs"]),
        "CurrencyCode": record.get("CurrencyCode") or "AUD",
    }
    if record.get("TotalDiscount") is not None and dec(record["TotalDiscount"]):
        out["TotalDiscount"] = as_number(record["TotalDiscount"])
    _dated(out, "Date", record.get("Date"))
    _dated(out, "DueDate", record.get("DueDate"))
    _dated(out, "FullyPaidOnDate", record.get("FullyPaidOnDate"))
    out.pop("FullyPaidOnDateString", None)
    if lines:
        out["LineItems"] = [line_item(line, unitdp) for line in record.get("LineItems", [])]
    return out


def credit_note(org, record: dict, lines: bool = True, unitdp: int = 2) -> dict:
    """A full CreditNote."""
    payments = [org.payments[pid] for pid in record.get("PaymentIDs", []) if pid in org.payments]
    out = {
        "Type": record["Type"],
        "CreditNoteID": record["CreditNoteID"],
        "CreditNoteNumber": record.get("CreditNoteNumber") or "",
        "Reference": record.get("Reference") or "",
        "Contact": contact_ref(org, record.get("ContactID"), record.get("ContactEcho")),
        "Status": record["Status"],
        "LineAmountTypes": record["LineAmountTypes"],
        "SubTotal": as_number(record["SubTotal"]),
        "TotalTax": as_number(record["TotalTax"]),
        "Total": as_number(record["Total"]),
        "RemainingCredit": as_number(record["AmountDue"]),
        "Allocations": [],
        "Payments": [payment_ref(p) for p in payments if p["Status"] == "AUTHORISED"],
        "CurrencyRate": as_number(record.get("CurrencyRate") or "1"),
        "CurrencyCode": record.get("CurrencyCode") or "AUD",
        "UpdatedDateUTC": ms_timestamp(record["UpdatedMs"]),
        "HasAttachments": False,
        "HasErrors": False,
    }
    _dated(out, "Date", record.get("Date"))
    _dated(out, "DueDate", record.get("DueDate"))
    _dated(out, "FullyPaidOnDate", record.get("FullyPaidOnDate"))
    out.pop("FullyPaidOnDateString", None)
    if lines:
        out["LineItems"] = [line_item(line, unitdp) for line in record.get("LineItems", [])]
    return out


def account_ref(account: dict | None) -> dict:
    """The {AccountID, Code} pair embedded in payments."""
    if account is None:
        return {}
    return {"AccountID": account["AccountID"], "Code": account.get("Code") or ""}


def payment(org, record: dict) -> dict:
    """A full Payment, with its document summary."""
    out = {
        "PaymentID": record["PaymentID"],
        "BankAmount": as_number(record["Amount"]),
        "Amount": as_number(record["Amount"]),
        "Reference": record.get("Reference") or "",
        "CurrencyRate": 1.0,
        "PaymentType": record["PaymentType"],
        "Status": record["Status"],
        "UpdatedDateUTC": ms_timestamp(record["UpdatedMs"]),
        "HasAccount": True,
        "IsReconciled": bool(record.get("IsReconciled")),
        "Account": account_ref(org.account(account_id=record["AccountID"])),
        "HasValidationErrors": False,
    }
    _dated(out, "Date", record["Date"])
    out.pop("DateString", None)
    if record.get("InvoiceID") and record["InvoiceID"] in org.invoices:
        doc = org.invoices[record["InvoiceID"]]
        out["Invoice"] = {
            "Type": doc["Type"],
            "InvoiceID": doc["InvoiceID"],
            "InvoiceNumber": doc.get("InvoiceNumber") or "",
            "Payments": [],
            "CreditNotes": [],
            "Prepayments": [],
            "Overpayments": [],
            "HasErrors": False,
            "IsDiscounted": False,
            "Contact": contact_ref(org, doc.get("ContactID")),
            "LineItems": [],
        }
    if record.get("CreditNoteID") and record["CreditNoteID"] in org.credit_notes:
        doc = org.credit_notes[record["CreditNoteID"]]
        out["CreditNote"] = {
            "Type": doc["Type"],
            "CreditNoteID": doc["CreditNoteID"],
            "CreditNoteNumber": doc.get("CreditNoteNumber") or "",
            "Contact": contact_ref(org, doc.get("ContactID")),
            "LineItems": [],
        }
    return out


def account(record: dict) -> dict:
    """An Account."""
    out = {
        "AccountID": record["AccountID"],
        "Code": record.get("Code") or "",
        "Name": record["Name"],
        "Status": record["Status"],
        "Type": record["Type"],
        "TaxType": record.get("TaxType") or "",
        "Class": record["Class"],
        "EnablePaymentsToAccount": bool(record.get("EnablePaymentsToAccount")),
        "ShowInExpenseClaims": bool(record.get("ShowInExpenseClaims")),
        "ReportingCode": record.get("ReportingCode") or "",
        "ReportingCodeName": record.get("ReportingCodeName") or "",
        "HasAttachments": False,
        "UpdatedDateUTC": ms_timestamp(record.get("UpdatedMs") or 0),
        "AddToWatchlist": False,
    }
    if record.get("SystemAccount"):
        out["SystemAccount"] = record["SystemAccount"]
    for key in ("BankAccountNumber", "BankAccountType", "CurrencyCode", "Description"):
        if record.get(key):
            out[key] = record[key]
    return out


def tax_rate(record: dict) -> dict:
    """A TaxRate."""
    applies = set(record.get("AppliesTo") or [])
    rate = as_number(record["Rate"])
    return {
        "Name": record["Name"],
        "TaxType": record["TaxType"],
        "ReportTaxType": record["ReportTaxType"],
        "CanApplyToAssets": "assets" in applies,
        "CanApplyToEquity": "equity" in applies,
        "CanApplyToExpenses": "expenses" in applies,
        "CanApplyToLiabilities": "liabilities" in applies,
        "CanApplyToRevenue": "revenue" in applies,
        "DisplayTaxRate": rate,
        "EffectiveRate": rate,
        "Status": record["Status"],
        "TaxComponents": [{"Name": "GST", "Rate": rate, "IsCompound": False, "IsNonRecoverable": False}],
    }


def tracking_category(record: dict, include_archived_options: bool = True) -> dict:
    """A TrackingCategory with its options."""
    return {
        "Name": record["Name"],
        "Status": record["Status"],
        "TrackingCategoryID": record["TrackingCategoryID"],
        "Options": [
            {
                "TrackingOptionID": o["TrackingOptionID"],
                "Name": o["Name"],
                "Status": o["Status"],
                "TrackingCategoryID": record["TrackingCategoryID"],
            }
            for o in record["Options"]
            if include_archived_options or o["Status"] == "ACTIVE"
        ],
    }


def organisation(org) -> dict:
    """The Organisation record (lock dates included)."""
    data = org.data
    out = {
        "OrganisationID": data["tenant_id"],
        "APIKey": "",
        "Name": data["name"],
        "LegalName": data["name"],
        "PaysTax": True,
        "Version": "AU",
        "OrganisationType": "COMPANY",
        "BaseCurrency": "AUD",
        "CountryCode": "AU",
        "IsDemoCompany": False,
        "OrganisationStatus": "ACTIVE",
        "FinancialYearEndDay": 30,
        "FinancialYearEndMonth": 6,
        "SalesTaxBasis": "ACCRUALS",
        "SalesTaxPeriod": "QUARTERLY1",
        "DefaultSalesTax": "Tax Exclusive",
        "DefaultPurchasesTax": "Tax Inclusive",
        "CreatedDateUTC": ms_timestamp(data["created_ms"]),
        "OrganisationEntityType": "COMPANY",
        "Timezone": "AUSEASTERNSTANDARDTIME",
        "ShortCode": data["short_code"],
        "Edition": "BUSINESS",
        "Class": "STARTER" if data.get("tier") == "starter" else "STANDARD",
        "Addresses": [],
        "Phones": [],
        "ExternalLinks": [],
        "PaymentTerms": {},
    }
    _dated(out, "PeriodLockDate", data.get("period_lock_date"))
    _dated(out, "EndOfYearLockDate", data.get("end_of_year_lock_date"))
    out.pop("PeriodLockDateString", None)
    out.pop("EndOfYearLockDateString", None)
    return out
