"""The engine end to end: backfill a seeded clinic into sandbox Xero, exactly once, totals to the cent."""

from datetime import date, timedelta

import pytest
from click.testing import CliRunner  # noqa: F401

from tests.support.engine import audit_xero_against_cliniko, wire_clinic


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=3, patients=120, invoices=500),
                     xero_sandbox) as clinic:
        yield clinic


def test_backfill_sends_every_invoice_contact_and_payment_once(clinic, runner):
    since = (date.today() - timedelta(days=400)).isoformat()
    result = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait",
                                 "--timeout", "240"])
    _debug(result)
    assert result.exit_code == 0, result.output
    counts = audit_xero_against_cliniko(clinic)
    rows = clinic.rows()
    by_status = {}
    for row in rows:
        by_status.setdefault((row.kind, row.status), []).append(row)
    print({k: len(v) for k, v in by_status.items()})
    assert counts["invoices"] >= 400
    for row in rows:
        assert row.status in ("synced", "failed", "skipped", "ignored"), (row.kind, row.status, row.status_reason)
        if row.status == "failed":
            assert row.error_category and row.failure_reason


def _debug(result):
    import traceback

    if result.exc_info:
        traceback.print_exception(*result.exc_info)
