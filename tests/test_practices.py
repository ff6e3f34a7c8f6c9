"""Practice setup: CLI create, Cliniko test connection, default accounts checked against Xero, enabling."""

import pytest
from sqlalchemy import select

from tests.support.servers import serve
from tests.xero.test_connect import connect, signed_in_admin
from webapp import crypto
from webapp.extensions import db
from webapp.models import AuditEntry, Practice


@pytest.fixture
def cliniko_sandbox(app):
    from sandbox.cliniko.app import create_app

    with serve(create_app(api_key="sandbox-key-au1", patients=20, invoices=30)) as url:
        app.config["CLINIKO_API_URL"] = f"{url}/v1"
        yield url


def test_cli_creates_practice_with_encrypted_key_and_shard(runner):
    result = runner.invoke(args=["practices", "create", "--name", "North", "--slug", "north",
                                 "--cliniko-api-key", "MS0xLTEyMzQ-au2"])
    assert result.exit_code == 0, result.output
    practice = db.session.scalars(select(Practice)).one()
    assert result.output.strip() == str(practice.id)
    assert practice.cliniko_shard == "au2"
    assert "MS0xLTEyMzQ" not in practice.cliniko_api_key_encrypted
    assert crypto.decrypt(practice.cliniko_api_key_encrypted) == "MS0xLTEyMzQ-au2"


@pytest.mark.parametrize(("args", "message"), [
    (["--slug", "North Clinic"], "Slug must be lowercase"),
    (["--cliniko-api-key", "abc-zz"], "unknown region suffix"),
])
def test_cli_refuses_bad_practice_input(runner, args, message):
    base = {"--name": "North", "--slug": "north", "--cliniko-api-key": "key-au1"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = runner.invoke(args=["practices", "create", *[x for kv in base.items() for x in kv]])
    assert result.exit_code != 0 and message in result.output
    assert db.session.query(Practice).count() == 0


def test_cliniko_test_connection_shows_account_and_businesses(cliniko_sandbox, web, make_user, make_practice):
    practice = make_practice("north")
    practice.cliniko_api_key_encrypted = crypto.encrypt("sandbox-key-au1")
    db.session.commit()
    signed_in_admin(web, make_user)
    token = web.csrf_token(f"/practices/{practice.id}/")
    response = web.client.post(f"/practices/{practice.id}/cliniko/test", data={"csrf_token": token},
                               follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Cliniko connected: account" in html and "businesses:" in html


def test_wrong_cliniko_key_gives_a_clear_message_not_a_trace(cliniko_sandbox, web, make_user, make_practice):
    practice = make_practice("north")  # its key is not the sandbox's
    signed_in_admin(web, make_user)
    token = web.csrf_token(f"/practices/{practice.id}/")
    response = web.client.post(f"/practices/{practice.id}/cliniko/test", data={"csrf_token": token},
                               follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Cliniko did not answer as expected" in html and "Traceback" not in html
    assert "key-north-au1" not in html


def test_enable_refused_until_connected_and_defaults_chosen(runner, xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    result = runner.invoke(args=["practices", "enable", "north"])
    assert result.exit_code != 0
    assert "will not work until you choose an active Xero connection" in result.output
    result = runner.invoke(args=["practices", "set-defaults", "north", "--sales-account", "200",
                                 "--payment-account", "090"])
    assert result.exit_code != 0 and "Connect the practice to Xero first" in result.output

    signed_in_admin(web, make_user)
    connect(web, practice.id)
    result = runner.invoke(args=["practices", "enable", "north"])
    assert "a default sales account and a default payment account" in result.output

    result = runner.invoke(args=["practices", "set-defaults", "north", "--sales-account", "090",
                                 "--payment-account", "090"])
    assert result.exit_code != 0 and "choose a revenue account" in result.output
    result = runner.invoke(args=["practices", "set-defaults", "north", "--sales-account", "200",
                                 "--payment-account", "200"])
    assert result.exit_code != 0 and "cannot take payments" in result.output
    result = runner.invoke(args=["practices", "set-defaults", "north", "--sales-account", "999",
                                 "--payment-account", "090"])
    assert result.exit_code != 0 and "no account with code '999'" in result.output

    result = runner.invoke(args=["practices", "set-defaults", "north", "--sales-account", "200",
                                 "--payment-account", "090", "--tax-exempt", "EXEMPTOUTPUT"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["practices", "enable", "north"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    practice = db.session.get(Practice, practice.id)
    assert practice.sync_enabled
    assert practice.settings["sales_account"] == "200" and practice.settings["payment_account"] == "090"
    assert db.session.query(AuditEntry).filter_by(action="practice.enable").count() == 1


def test_archived_account_is_refused(runner, xero_app, web, make_user, make_practice):
    from webapp.models import XeroAccount

    practice = make_practice("north")
    signed_in_admin(web, make_user)
    connect(web, practice.id)
    archived = db.session.scalars(select(XeroAccount).where(XeroAccount.status == "ARCHIVED")).first()
    assert archived is not None, "the sandbox chart has one archived account"
    result = runner.invoke(args=["practices", "set-defaults", "north", "--sales-account", archived.code,
                                 "--payment-account", "090"])
    assert result.exit_code != 0 and "is archived in Xero" in result.output


def test_cli_maps_a_cliniko_record_by_name_loading_the_catalogue(cliniko_sandbox, runner, make_practice):
    from webapp.models import AuditEntry, Mapping

    practice = make_practice("north")
    practice.cliniko_api_key_encrypted = crypto.encrypt("sandbox-key-au1")
    db.session.commit()
    result = runner.invoke(args=["practices", "map", "north", "tax", "GST", "--tax-type", "OUTPUT"])
    assert result.exit_code == 0, result.output
    assert "Mapped tax 'GST'" in result.output
    result = runner.invoke(args=["practices", "map", "north", "billable_item", "Report Writing (per hour)",
                                 "--account", "250"])
    assert result.exit_code == 0, result.output
    rows = {(m.kind, m.cliniko_name): m for m in db.session.scalars(select(Mapping))}
    assert rows[("tax", "GST")].tax_type == "OUTPUT"
    assert rows[("billable_item", "Report Writing (per hour)")].account_code == "250"
    assert db.session.query(AuditEntry).filter_by(action="mapping.save").count() == 2
    result = runner.invoke(args=["practices", "map", "north", "tax", "No Such Tax", "--tax-type", "OUTPUT"])
    assert result.exit_code != 0 and "Cliniko has no tax named 'No Such Tax'" in result.output
