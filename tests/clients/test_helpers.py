"""Pure helpers: Xero dates, exact-money JSON, Cliniko record conversion, shard parsing, result matching."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from webapp.clients import money_json
from webapp.clients.cliniko import ClinikoClient, base_url_for_key, shard_from_api_key
from webapp.clients.cliniko_records import INVALID, convert, relation_id
from webapp.clients.errors import ConfigurationError, InvalidApiKeyError
from webapp.clients.xero_dates import format_xero_date, parse_xero_date, request_date, xero_date_to_date
from webapp.clients.xero_results import match, sent_keys

UA = "Cliniko Xero Sync (ops@example.com)"


def test_parse_xero_dates():
    assert parse_xero_date("/Date(1551916800000+0000)/") == datetime(2019, 3, 7, tzinfo=UTC)
    assert parse_xero_date("/Date(1552329729002)/") == datetime(2019, 3, 11, 18, 42, 9, 2000, tzinfo=UTC)
    shifted = parse_xero_date("/Date(1551916800000+1300)/")
    assert shifted == datetime(2019, 3, 7, tzinfo=UTC) and shifted.utcoffset() == timedelta(hours=13)
    assert parse_xero_date("/Date(-86400000+0000)/") == datetime(1969, 12, 31, tzinfo=UTC)
    assert parse_xero_date("2019-03-07T00:00:00") == datetime(2019, 3, 7, tzinfo=UTC)
    assert parse_xero_date(None) is None and parse_xero_date("") is None
    assert xero_date_to_date("/Date(1539993600000+0000)/") == date(2018, 10, 20)
    with pytest.raises(ValueError):
        parse_xero_date("/Date(abc)/")


def test_format_xero_dates_round_trip():
    moment = datetime(2024, 2, 29, 23, 59, 58, 123000, tzinfo=UTC)
    text = format_xero_date(moment)
    assert text == "/Date(1709251198123+0000)/"
    assert parse_xero_date(text) == moment
    assert format_xero_date(date(2019, 3, 7)) == "/Date(1551916800000+0000)/"
    assert request_date(datetime(2024, 5, 1, 10, tzinfo=UTC)) == "2024-05-01"


def test_money_json_is_exact_both_ways():
    payload = {"UnitAmount": Decimal("81.8181"), "Quantity": Decimal("1.5000"), "Tiny": Decimal("0.1"),
               "Big": Decimal("12345678901234567.89"), "n": 3, "ok": True, "none": None,
               "d": date(2024, 1, 2),
               "s": 'quote " and ünïcode', "list": [Decimal("1E+2"), Decimal("-0.00")]}
    text = money_json.dumps(payload)
    assert '"UnitAmount":81.8181' in text and '"Tiny":0.1' in text and '"Big":12345678901234567.89' in text
    assert '"list":[100,-0.00]' in text and '"d":"2024-01-02"' in text
    back = money_json.loads(text)
    assert back["UnitAmount"] == Decimal("81.8181") and isinstance(back["UnitAmount"], Decimal)
    assert back["Big"] == Decimal("12345678901234567.89") and back["s"] == payload["s"]
    with pytest.raises(TypeError):
        money_json.dumps({"Amount": 0.1})
    with pytest.raises(ValueError):
        money_json.dumps({"Amount": Decimal("NaN")})


def test_cliniko_record_conversion():
    raw = money_json.loads("""{"id": 3, "number": 1, "issue_date": "2014-12-11", "total_amount": "2367.18",
        "tax_amount": 0.0, "status": 20, "closed_at": "2014-12-18T10:47:08Z", "deleted_at": null,
        "quantity": 2, "discount_percentage": 18.1818,
        "patient": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/380"}},
        "invoice_items": {"links": {"self": "https://api.au1.cliniko.com/v1/invoices/3/invoice_items"}},
        "net_amount": "not money", "updated_at": "yesterday"}""")
    rec = convert(raw)
    assert rec["id"] == "3" and rec["number"] == 1 and rec["status"] == 20
    assert rec["issue_date"] == date(2014, 12, 11)
    assert rec["total_amount"] == Decimal("2367.18") and rec["tax_amount"] == Decimal("0.0")
    assert rec["quantity"] == Decimal(2) and rec["discount_percentage"] == Decimal("18.1818")
    assert rec["closed_at"] == datetime(2014, 12, 18, 10, 47, 8, tzinfo=UTC) and rec["deleted_at"] is None
    assert rec["patient_id"] == "380" and "invoice_items_id" not in rec
    assert rec["net_amount"] is None and rec["updated_at"] is None
    assert rec[INVALID] == {"net_amount": "not money", "updated_at": "yesterday"}
    assert relation_id(None) is None and relation_id({"links": {}}) is None


def test_shards_and_user_agent():
    assert shard_from_api_key("abc123") == "au1"
    assert shard_from_api_key("MS0xLWFiYw-au2") == "au2"
    assert shard_from_api_key("sandbox-key-uk1") == "uk1"
    assert base_url_for_key("x-ca1") == "https://api.ca1.cliniko.com/v1"
    for bad in ("abc-nope", "abc-au123", "abc-", ""):
        with pytest.raises(InvalidApiKeyError):
            shard_from_api_key(bad)
    assert ClinikoClient("k-eu1", UA).base_url == "https://api.eu1.cliniko.com/v1"
    assert ClinikoClient("k-eu1", UA, api_url="http://127.0.0.1:5000").base_url == "http://127.0.0.1:5000/v1"
    assert ClinikoClient("k", UA, api_url="http://127.0.0.1:5000/v1/").base_url == "http://127.0.0.1:5000/v1"
    for ua in ("", "My app", "My app (nobody)"):
        with pytest.raises(ConfigurationError):
            ClinikoClient("k", ua)
    assert "k-eu1" not in repr(ClinikoClient("k-eu1", UA))


def test_batch_results_are_matched_by_natural_key_not_position():
    sent = [{"InvoiceNumber": "INV-1"}, {"InvoiceNumber": "INV-2"}, {"InvoiceNumber": "INV-3"}]
    keys = sent_keys("Invoices", sent)
    returned = [  # reversed order, one error, one missing, one stranger
        {"InvoiceNumber": "INV-3", "InvoiceID": "c3", "StatusAttributeString": "OK"},
        {"InvoiceNumber": "INV-1", "InvoiceID": "00000000-0000-0000-0000-000000000000",
         "StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": "Invoice # must be unique."}]},
        {"InvoiceNumber": "INV-9", "InvoiceID": "c9"},
    ]
    result = match("Invoices", keys, returned, None)
    assert result["INV-3"].ok and result["INV-3"].xero_id == "c3"
    assert not result["INV-1"].ok and result["INV-1"].errors == ("Invoice # must be unique.",)
    assert result["INV-1"].xero_id is None
    assert result.missing == ["INV-2"] and [o.key for o in result.unmatched] == ["INV-9"]
    assert set(result.succeeded) == {"INV-3"} and set(result.failed) == {"INV-1"}


def test_ok_without_id_is_ambiguous_and_keys_are_required():
    returned = [{"Reference": "Cliniko invoice 7", "PaymentID": None, "HasValidationErrors": False}]
    result = match("Payments", ["Cliniko invoice 7"], returned, None)
    outcome = result["Cliniko invoice 7"]
    assert not outcome.ok and outcome.ambiguous
    with pytest.raises(ValueError):
        sent_keys("Contacts", [{"Name": "No number"}])
    with pytest.raises(ValueError):
        sent_keys("Invoices", [{"InvoiceNumber": "A"}, {"InvoiceNumber": "A"}])
    assert sent_keys("Invoices", [{"InvoiceID": "abc", "Status": "VOIDED"}]) == ["abc"]
