"""`q[]` filters and `sort` of sandbox Cliniko, on exact records loaded through /_sandbox/load."""

import pytest
import requests

from tests.sandbox.cliniko_fixtures import TIMEOUT, control, get, running, session

PATIENTS = [
    {
        "id": "101",
        "first_name": "Sarah",
        "last_name": "Smith",
        "email": "sarah@example.com",
        "date_of_birth": "1980-05-14",
        "created_at": "2024-01-01T00:00:00Z",
    },
    {
        "id": "102",
        "first_name": "Sarah",
        "last_name": "Smithson",
        "email": None,
        "date_of_birth": "1975-11-02",
        "created_at": "2024-01-02T00:00:00Z",
    },
    {
        "id": "103",
        "first_name": "Zoë",
        "last_name": "Nguyễn",
        "email": "zoe@example.com",
        "date_of_birth": "1990-05-30",
        "created_at": "2024-01-03T00:00:00Z",
    },
    {
        "id": "104",
        "first_name": "Ian",
        "last_name": "Jackson",
        "email": "ian@example.com",
        "date_of_birth": "1966-02-01",
        "created_at": "2024-01-04T00:00:00Z",
        "archived_at": "2024-06-01T00:00:00Z",
    },
    {
        "id": "105",
        "first_name": "Del",
        "last_name": "Eted",
        "email": None,
        "date_of_birth": None,
        "created_at": "2024-01-05T00:00:00Z",
        "archived_at": "2024-06-01T00:00:00Z",
        "deleted_at": "2024-06-02T00:00:00Z",
    },
]


def _invoice(n, status, updated, **extra):
    return {
        "id": str(200 + n),
        "number": n,
        "status": status,
        "issue_date": f"2025-0{1 + n % 5}-1{n % 10}",
        "created_at": f"2025-01-{10 + n:02d}T09:00:00Z",
        "updated_at": updated,
        "patient_id": "101",
        "practitioner_id": "9" if n % 2 else "8",
        "business_id": "7",
        **extra,
    }


INVOICES = [
    _invoice(1, 10, "2025-03-01T10:00:00Z"),
    _invoice(2, 20, "2025-03-02T10:00:00Z", closed_at="2025-03-02T10:00:00Z"),
    _invoice(3, 20, "2025-03-02T10:00:00Z", closed_at="2025-03-02T10:00:00Z"),
    _invoice(4, 30, "2025-03-04T10:00:00Z", closed_at="2025-03-04T10:00:00Z"),
    _invoice(5, 40, "2025-03-05T10:00:00Z"),
    _invoice(6, 20, "2025-03-06T10:00:00Z", archived_at="2025-03-06T10:00:00Z"),
    _invoice(7, 10, "2025-03-07T10:00:00Z", deleted_at="2025-03-07T10:00:00Z"),
    _invoice(8, 10, "2025-03-08T10:00:00Z", patient_id="102"),
]
ITEMS = [
    {
        "id": str(300 + i),
        "invoice_id": inv["id"],
        "name": "Standard Consultation",
        "unit_price": "90.0",
        "quantity": 1,
        "tax_rate": 0.0,
        "tax_name": "GST Free",
        "billable_item_id": "50",
        "created_at": inv["created_at"],
        "archived_at": inv.get("archived_at"),
        "deleted_at": inv.get("deleted_at"),
    }
    for i, inv in enumerate(INVOICES)
]


@pytest.fixture(scope="module")
def root():
    with running(patients=10, invoices=20) as url:
        control(
            url, "load", {"replace": True, "patients": PATIENTS, "invoices": INVOICES, "invoice_items": ITEMS}
        )
        yield url


def numbers(root, *filters, **params):
    body = get(session(), f"{root}/v1/invoices", **{"q[]": list(filters)}, per_page=100, **params).json()
    return [i["number"] for i in body["invoices"]]


def names(root, *filters):
    body = get(session(), f"{root}/v1/patients", **{"q[]": list(filters)}, per_page=100).json()
    return sorted(p["id"] for p in body["patients"])


def test_archived_and_deleted_are_left_out_by_default(root):
    assert numbers(root) == [1, 2, 3, 4, 5, 8]


def test_archived_at_star_includes_archived_but_not_deleted(root):
    assert numbers(root, "archived_at:*") == [1, 2, 3, 4, 5, 6, 8]
    assert numbers(root, "archived_at:?") == [6]
    assert numbers(root, "archived_at:!?") == [1, 2, 3, 4, 5, 8]


def test_deleted_records_through_deleted_at_filters(root):
    assert numbers(root, "deleted_at:*") == [1, 2, 3, 4, 5, 7, 8]
    assert numbers(root, "deleted_at:?") == [7]
    assert numbers(root, "deleted_at:>2025-03-01T00:00:00Z") == [7]
    assert numbers(root, "deleted_at:*", "archived_at:*") == [1, 2, 3, 4, 5, 6, 7, 8]


def test_single_archived_or_deleted_invoice_needs_the_filter(root):
    s = session()
    assert get(s, f"{root}/v1/invoices/206").status_code == 404
    assert get(s, f"{root}/v1/invoices/206", **{"q[]": "archived_at:*"}).json()["number"] == 6
    assert get(s, f"{root}/v1/invoices/207").status_code == 404
    assert get(s, f"{root}/v1/invoices/207", **{"q[]": "deleted_at:*"}).json()["number"] == 7


def test_numeric_operators_and_comma_lists(root):
    assert numbers(root, "status:=20") == [2, 3]
    assert numbers(root, "status:=10,40") == [1, 5, 8]
    assert numbers(root, "status:!=10") == [2, 3, 4, 5]
    assert numbers(root, "number:>3") == [4, 5, 8]
    assert numbers(root, "number:>=3") == [3, 4, 5, 8]
    assert numbers(root, "number:<3") == [1, 2]
    assert numbers(root, "number:<=3") == [1, 2, 3]
    assert numbers(root, "id:=201,205") == [1, 5]
    assert numbers(root, "patient_id:=102") == [8]
    assert numbers(root, "practitioner_id:=8", "status:=10,20") == [2, 8]


def test_datetime_operators_on_updated_at(root):
    assert numbers(root, "updated_at:>2025-03-02T10:00:00Z") == [4, 5, 8]
    assert numbers(root, "updated_at:>=2025-03-02T10:00:00Z") == [2, 3, 4, 5, 8]
    assert numbers(root, "updated_at:<2025-03-02T10:00:00Z") == [1]
    assert numbers(root, "updated_at:<=2025-03-02T10:00:00Z") == [1, 2, 3]
    assert numbers(root, "updated_at:>=2025-03-02T10:00:00Z", "updated_at:<2025-03-05T00:00:00Z") == [2, 3, 4]
    assert numbers(root, "updated_at:*") == [1, 2, 3, 4, 5, 8]


def test_date_operators_and_wildcards(root):
    assert numbers(root, "issue_date:=2025-03-12") == [2]
    assert numbers(root, "issue_date:>=2025-04-01") == [3, 4, 8]
    assert numbers(root, "issue_date:<2025-03-01") == [1, 5]
    assert numbers(root, "issue_date:=****-0*-1*") == [1, 2, 3, 4, 5, 8]
    assert names(root, "date_of_birth:=****-05-**") == ["101", "103"]
    assert names(root, "date_of_birth:<1980-01-01") == ["102"]


def test_string_operators(root):
    assert names(root, "last_name:=Smith") == ["101"]
    assert names(root, "last_name:~smith") == ["101", "102"]
    assert names(root, "last_name:~~Sm%son") == ["102"]
    assert names(root, "last_name:!=Smith") == ["102", "103"]
    assert names(root, "first_name:=Zoë") == ["103"]
    assert names(root, "email:?") == ["101", "103"]
    assert names(root, "email:!?") == ["102"]
    assert names(root, "first_name:~sar", "last_name:~son") == ["102"]


def test_patients_archived_and_deleted(root):
    assert names(root) == ["101", "102", "103"]
    assert names(root, "archived_at:*") == ["101", "102", "103", "104"]  # deleted patients never show
    s = session()
    assert get(s, f"{root}/v1/patients/104").status_code == 404
    assert get(s, f"{root}/v1/patients/104", **{"q[]": "archived_at:*"}).status_code == 200
    assert get(s, f"{root}/v1/patients/105", **{"q[]": "archived_at:*"}).status_code == 404


def test_invoice_items_follow_their_invoice(root):
    body = get(session(), f"{root}/v1/invoice_items", **{"q[]": "invoice_id:=201,206,207"}).json()
    assert [i["id"] for i in body["invoice_items"]] == ["300"]
    body = get(
        session(),
        f"{root}/v1/invoice_items",
        **{"q[]": ["invoice_id:=201,206,207", "archived_at:*", "deleted_at:*"]},
    ).json()
    assert sorted(i["id"] for i in body["invoice_items"]) == ["300", "305", "306"]


@pytest.mark.parametrize(
    "bad", ["nosuchfield:=1", "status:~1", "updated_at:>yesterday", "number", "status:=x", "last_name:>a"]
)
def test_bad_filters_are_refused(root, bad):
    r = get(session(), f"{root}/v1/invoices", **{"q[]": bad})
    assert r.status_code == 400 and "message" in r.json()


def test_sort_default_is_created_at_ascending(root):
    assert numbers(root) == [1, 2, 3, 4, 5, 8]


def test_sort_desc_and_multi_key(root):
    assert numbers(root, sort="number:desc") == [8, 5, 4, 3, 2, 1]
    assert numbers(root, sort="updated_at:desc,number") == [8, 5, 4, 2, 3, 1]
    assert numbers(root, sort="updated_at:desc,number:desc") == [8, 5, 4, 3, 2, 1]
    assert numbers(root, sort="status,number:desc") == [8, 1, 3, 2, 4, 5]
    assert numbers(root, sort="status", order="desc") == [5, 4, 2, 3, 1, 8]


def test_bad_sort_field_is_refused(root):
    r = get(session(), f"{root}/v1/invoices", sort="nope")
    assert r.status_code == 400


def test_bare_q_parameter_of_the_old_docs(root):
    r = requests.get(
        f"{root}/v1/invoices?q=status:%3D40",
        auth=session().auth,
        headers=dict(session().headers),
        timeout=TIMEOUT,
    )
    assert [i["number"] for i in r.json()["invoices"]] == [5]


def test_cancelled_appointments_need_a_filter():
    with running(patients=30, invoices=40) as root:
        s = session()
        default = get(s, f"{root}/v1/individual_appointments", per_page=100).json()
        everything = get(
            s, f"{root}/v1/individual_appointments", per_page=100, **{"q[]": "archived_at:*"}
        ).json()
        cancelled = get(s, f"{root}/v1/individual_appointments", **{"q[]": "cancelled_at:?"}).json()
        assert not any(a["cancelled_at"] or a["archived_at"] for a in default["individual_appointments"])
        assert cancelled["total_entries"] >= 1
        assert all(a["cancelled_at"] for a in cancelled["individual_appointments"])
        assert everything["total_entries"] > default["total_entries"] + cancelled["total_entries"] - 1
