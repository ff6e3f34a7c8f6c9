"""Starting data: two AU organisations with a chart of accounts, GST rates and tracking."""

import uuid

DEMO_TENANT_ID = "a3b6c0de-5f1e-4c8a-9d2b-7e6f00000001"
SECOND_TENANT_ID = "a3b6c0de-5f1e-4c8a-9d2b-7e6f00000002"
DEMO_ORG_NAME = "Demo Clinic Pty Ltd"
SECOND_ORG_NAME = "Harbourside Physio Pty Ltd"

DEFAULT_USER_EMAIL = "demo@example.com"
DEFAULT_USER_PASSWORD = "sandbox"

_NS = uuid.UUID("6f1b2a52-3c1d-4e0b-8a5f-0c7d9e2b4a10")

# (code, name, type, class, tax type, status, extra)
_ACCOUNTS = [
    (
        "090",
        "Business Bank Account",
        "BANK",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"BankAccountNumber": "062000123456"},
    ),
    (
        "091",
        "Business Savings Account",
        "BANK",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"BankAccountNumber": "062000654321"},
    ),
    ("200", "Sales", "REVENUE", "REVENUE", "OUTPUT", "ACTIVE", {}),
    ("250", "Consulting Revenue (old)", "REVENUE", "REVENUE", "OUTPUT", "ARCHIVED", {}),
    ("260", "Other Revenue", "REVENUE", "REVENUE", "OUTPUT", "ACTIVE", {}),
    ("270", "Interest Income", "REVENUE", "REVENUE", "EXEMPTOUTPUT", "ACTIVE", {}),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "INPUT", "ACTIVE", {}),
    ("404", "Bank Fees", "EXPENSE", "EXPENSE", "EXEMPTEXPENSES", "ACTIVE", {}),
    ("429", "General Expenses", "EXPENSE", "EXPENSE", "INPUT", "ACTIVE", {}),
    ("610", "Accounts Receivable", "CURRENT", "ASSET", "BASEXCLUDED", "ACTIVE", {"SystemAccount": "DEBTORS"}),
    (
        "611",
        "Stripe Clearing",
        "CURRENT",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"EnablePaymentsToAccount": True},
    ),
    (
        "612",
        "HICAPS Clearing",
        "CURRENT",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"EnablePaymentsToAccount": True},
    ),
    (
        "613",
        "Medicare Clearing",
        "CURRENT",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"EnablePaymentsToAccount": True},
    ),
    (
        "614",
        "Tyro EFTPOS Clearing",
        "CURRENT",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"EnablePaymentsToAccount": True},
    ),
    ("615", "Cash Clearing", "CURRENT", "ASSET", "BASEXCLUDED", "ACTIVE", {"EnablePaymentsToAccount": True}),
    (
        "616",
        "Health Fund Clearing",
        "CURRENT",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"EnablePaymentsToAccount": True},
    ),
    ("617", "DVA Clearing", "CURRENT", "ASSET", "BASEXCLUDED", "ACTIVE", {"EnablePaymentsToAccount": True}),
    (
        "618",
        "Gift Voucher Clearing",
        "CURRLIAB",
        "LIABILITY",
        "BASEXCLUDED",
        "ACTIVE",
        {"EnablePaymentsToAccount": True},
    ),
    (
        "619",
        "Other Payments Clearing",
        "CURRENT",
        "ASSET",
        "BASEXCLUDED",
        "ACTIVE",
        {"EnablePaymentsToAccount": True},
    ),
    ("620", "Prepayments", "CURRENT", "ASSET", "BASEXCLUDED", "ACTIVE", {}),
    (
        "800",
        "Accounts Payable",
        "CURRLIAB",
        "LIABILITY",
        "BASEXCLUDED",
        "ACTIVE",
        {"SystemAccount": "CREDITORS"},
    ),
    ("820", "GST", "CURRLIAB", "LIABILITY", "BASEXCLUDED", "ACTIVE", {"SystemAccount": "GST"}),
    ("860", "Rounding", "CURRLIAB", "LIABILITY", "BASEXCLUDED", "ACTIVE", {"SystemAccount": "ROUNDING"}),
    (
        "960",
        "Retained Earnings",
        "EQUITY",
        "EQUITY",
        "BASEXCLUDED",
        "ACTIVE",
        {"SystemAccount": "RETAINEDEARNINGS"},
    ),
]

# (tax type, name, rate, status, report tax type, applies to {revenue, expenses, assets, liabilities, equity})
_REV = {"revenue"}
_ALL = {"revenue", "expenses", "assets", "liabilities", "equity"}
_EXP = {"expenses", "assets", "liabilities", "equity"}
_TAX_RATES = [
    ("OUTPUT", "GST on Income", "10.0000", "ACTIVE", "OUTPUT", _REV | {"assets", "liabilities", "equity"}),
    (
        "EXEMPTOUTPUT",
        "GST Free Income",
        "0.0000",
        "ACTIVE",
        "EXEMPTOUTPUT",
        _REV | {"assets", "liabilities", "equity"},
    ),
    ("INPUTTAXED", "Input Taxed", "0.0000", "ACTIVE", "INPUTTAXED", _ALL),
    ("BASEXCLUDED", "BAS Excluded", "0.0000", "ACTIVE", "BASEXCLUDED", _ALL),
    ("INPUT", "GST on Expenses", "10.0000", "ACTIVE", "INPUT", _EXP),
    ("EXEMPTEXPENSES", "GST Free Expenses", "0.0000", "ACTIVE", "EXEMPTEXPENSES", _EXP),
    ("TAX001", "GST on Income (old 12.5%)", "12.5000", "ARCHIVED", "OUTPUT", _REV),
]

_TRACKING = [
    (
        "Location",
        "ACTIVE",
        [("Sydney CBD", "ACTIVE"), ("Parramatta", "ACTIVE"), ("Bondi (closed)", "ARCHIVED")],
    ),
    (
        "Practitioner",
        "ACTIVE",
        [("Dr Alice Nguyen", "ACTIVE"), ("Dr Ben Carter", "ACTIVE"), ("Chloe Smith", "ACTIVE")],
    ),
    ("Region (old)", "ARCHIVED", [("North", "ACTIVE")]),
]


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def chart_of_accounts(tenant_id: str, created_ms: int) -> list[dict]:
    """An AU-style chart of accounts, in state form."""
    accounts = []
    for code, name, type_, class_, tax, status, extra in _ACCOUNTS:
        account = {
            "AccountID": _id(tenant_id, "account", code),
            "Code": code,
            "Name": name,
            "Type": type_,
            "Class": class_,
            "TaxType": tax,
            "Status": status,
            "EnablePaymentsToAccount": False,
            "ShowInExpenseClaims": False,
            "SystemAccount": "",
            "UpdatedMs": created_ms,
        }
        if type_ == "BANK":
            account["BankAccountType"] = "BANK"
            account["CurrencyCode"] = "AUD"
        account.update(extra)
        accounts.append(account)
    return accounts


def tax_rates() -> list[dict]:
    """GST tax rates, one archived, in state form."""
    rates = []
    for tax_type, name, rate, status, report, applies in _TAX_RATES:
        rates.append(
            {
                "TaxType": tax_type,
                "Name": name,
                "Rate": rate,
                "Status": status,
                "ReportTaxType": report,
                "AppliesTo": sorted(applies),
            }
        )
    return rates


def tracking_categories(tenant_id: str) -> list[dict]:
    """Two active tracking categories (Location, Practitioner) and one archived."""
    categories = []
    for name, status, options in _TRACKING:
        category_id = _id(tenant_id, "tracking", name)
        categories.append(
            {
                "TrackingCategoryID": category_id,
                "Name": name,
                "Status": status,
                "Options": [
                    {
                        "TrackingOptionID": _id(tenant_id, "tracking", name, option),
                        "Name": option,
                        "Status": ostatus,
                    }
                    for option, ostatus in options
                ],
            }
        )
    return categories


def organisation(tenant_id: str, name: str, short_code: str, created_ms: int) -> dict:
    """One organisation's whole state."""
    return {
        "tenant_id": tenant_id,
        "name": name,
        "short_code": short_code,
        "tier": "standard",
        "day_limit": None,
        "period_lock_date": None,
        "end_of_year_lock_date": None,
        "created_ms": created_ms,
        "accounts": chart_of_accounts(tenant_id, created_ms),
        "tax_rates": tax_rates(),
        "tracking_categories": tracking_categories(tenant_id),
        "contacts": {},
        "invoices": {},
        "credit_notes": {},
        "payments": {},
        "sequences": {"invoice": 0, "credit_note": 0},
    }


def default_organisations(created_ms: int) -> dict:
    """The demo organisation plus a second one for organisation-choice tests."""
    return {
        DEMO_TENANT_ID: organisation(DEMO_TENANT_ID, DEMO_ORG_NAME, "!DemoC", created_ms),
        SECOND_TENANT_ID: organisation(SECOND_TENANT_ID, SECOND_ORG_NAME, "!HarbP", created_ms),
    }


def default_identity(settings) -> dict:
    """The identity server's starting state: one client app and one user with both organisations."""
    return {
        "clients": {
            settings.client_id: {
                "secret": settings.client_secret,
                "redirect_uris": list(settings.redirect_uris),
                "name": settings.app_name,
            }
        },
        "users": {
            _id("user", DEFAULT_USER_EMAIL): {
                "email": DEFAULT_USER_EMAIL,
                "password": DEFAULT_USER_PASSWORD,
                "name": "Demo User",
                "tenant_ids": [DEMO_TENANT_ID, SECOND_TENANT_ID],
            }
        },
        "codes": {},
        "grants": {},
        "refresh_tokens": {},
        "access_tokens": {},
        "connections": {},
        "logins": {},
    }
