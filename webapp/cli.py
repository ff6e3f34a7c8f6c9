"""Command-line interface (`flask --app wsgi …`): users, practices, keys, sandbox (SPEC §14)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from webapp import crypto, practices
from webapp.audit import record
from webapp.auth.users import UserError, create_user
from webapp.clients.cliniko import shard_from_api_key
from webapp.clients.errors import InvalidApiKeyError
from webapp.extensions import db
from webapp.models import Practice, XeroConnection

users_cli = AppGroup("users", help="Manage users.")
practices_cli = AppGroup("practices", help="Manage practices.")
keys_cli = AppGroup("keys", help="Encryption keys for tokens at rest.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "support"]), default="support", show_default=True)
@click.option("--practice", "practice_slug", help="Limit the user to one practice (slug).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def users_create(email: str, role: str, practice_slug: str | None, password: str) -> None:
    """Create a user who can log in."""
    try:
        user = create_user(email, password, role=role, practice_slug=practice_slug)
    except UserError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    record("user.create", object_type="user", object_id=user.id, details={"email": user.email, "role": role})
    db.session.commit()
    click.echo(f"Created {role} {user.email} (id {user.id}).")


@practices_cli.command("create")
@click.option("--name", required=True)
@click.option("--slug", required=True)
@click.option("--cliniko-api-key", required=True)
@click.option("--time-zone", default="Australia/Sydney", show_default=True)
def practices_create(name: str, slug: str, cliniko_api_key: str, time_zone: str) -> None:
    """Create a practice and print its id."""
    if not practices.SLUG_RE.match(slug):
        raise click.ClickException("Slug must be lowercase letters, digits and dashes.")
    if db.session.scalar(select(Practice).where(Practice.slug == slug)):
        raise click.ClickException(f"A practice with slug {slug!r} already exists.")
    try:
        shard = shard_from_api_key(cliniko_api_key)
    except InvalidApiKeyError as exc:
        raise click.ClickException(exc.message) from None
    practice = Practice(
        name=name,
        slug=slug,
        cliniko_api_key_encrypted=crypto.encrypt(cliniko_api_key.strip()),
        cliniko_shard=shard,
        time_zone=time_zone,
        settings={},
        poll_cursors={},
    )
    db.session.add(practice)
    db.session.flush()
    record("practice.create", object_type="practice", object_id=practice.id, practice_id=practice.id)
    db.session.commit()
    click.echo(practice.id)


@practices_cli.command("set-defaults")
@click.argument("slug")
@click.option("--sales-account", required=True, help="Xero account code for sales (e.g. 200).")
@click.option("--payment-account", required=True, help="Xero bank or payments-enabled account code.")
@click.option("--rounding-account", help="Xero account code for rounding lines.")
@click.option("--tax-exempt", help="Xero tax type for unmapped Cliniko taxes (e.g. EXEMPTOUTPUT).")
def practices_set_defaults(slug, sales_account, payment_account, rounding_account, tax_exempt) -> None:
    """Choose the default accounts (checked against the organisation's lists)."""
    try:
        practice = practices.find(slug)
        chosen = practices.set_defaults(practice, None, sales_account=sales_account, payment_account=payment_account,
                                        rounding_account=rounding_account, tax_exempt=tax_exempt)
    except practices.PracticeError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo("Defaults saved: " + ", ".join(f"{k}={v}" for k, v in chosen.items() if v))


@practices_cli.command("enable")
@click.argument("slug")
def practices_enable(slug: str) -> None:
    """Turn sync on for a practice (needs a Xero connection and default accounts)."""
    try:
        practice = practices.find(slug)
        practices.enable(practice, None)
    except practices.PracticeError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Sync enabled for {practice.name}.")


@practices_cli.command("map")
@click.argument("slug")
@click.argument("kind", type=click.Choice(["billable_item", "product", "practitioner", "business", "tax"]))
@click.argument("name")
@click.option("--account", "account_code", help="Xero account code for this item's lines.")
@click.option("--tax-type", help="Xero tax type (for a Cliniko tax).")
@click.option("--payment-account", "payment_account_code", help="Xero payment account (practitioner/business).")
@click.option("--tracking-option", "tracking_option_id", help="Xero tracking option id (practitioner/business).")
def practices_map(slug, kind, name, account_code, tax_type, payment_account_code, tracking_option_id) -> None:
    """Map a Cliniko record (by its name in the Cliniko catalogue) to Xero choices."""
    from webapp.models import ClinikoRecord, Mapping
    from webapp.sync import catalogue

    try:
        practice = practices.find(slug)
    except practices.PracticeError as exc:
        raise click.ClickException(str(exc)) from None
    query = select(ClinikoRecord).where(ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == kind,
                                        ClinikoRecord.name == name)
    found = db.session.scalar(query)
    if found is None:
        catalogue.refresh(practice, practices.cliniko_client(practice))
        db.session.commit()
        found = db.session.scalar(query)
    if found is None:
        raise click.ClickException(f"Cliniko has no {kind.replace('_', ' ')} named {name!r}.")
    # The practice-wide mapping (organisations' own overrides are set on the Mappings screen).
    mapping = db.session.scalar(select(Mapping).where(
        Mapping.practice_id == practice.id, Mapping.kind == kind, Mapping.cliniko_id == found.cliniko_id,
        Mapping.connection_id.is_(None)))
    if mapping is None:
        mapping = Mapping(practice_id=practice.id, kind=kind, cliniko_id=found.cliniko_id)
        db.session.add(mapping)
    chosen = {"account_code": account_code, "tax_type": tax_type, "payment_account_code": payment_account_code,
              "tracking_option_id": tracking_option_id}
    mapping.cliniko_name = found.name
    for field_name, value in chosen.items():
        if value is not None:
            setattr(mapping, field_name, value or None)
    record_audit = {k: v for k, v in chosen.items() if v is not None}
    record("mapping.save", object_type="mapping", practice_id=practice.id,
           details={"kind": kind, "cliniko_id": found.cliniko_id, "name": name, **record_audit})
    db.session.commit()
    click.echo(f"Mapped {kind} {name!r} → " + ", ".join(f"{k}={v}" for k, v in record_audit.items()))


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every token and API key under the first key of TOKEN_ENCRYPTION_KEYS."""
    count = 0
    for practice in db.session.scalars(select(Practice)):
        practice.cliniko_api_key_encrypted = crypto.rotate(practice.cliniko_api_key_encrypted)
        count += 1
    for conn in db.session.scalars(select(XeroConnection)):
        conn.access_token_encrypted = crypto.rotate(conn.access_token_encrypted)
        conn.refresh_token_encrypted = crypto.rotate(conn.refresh_token_encrypted)
        count += 1
    record("keys.rotate", details={"rows": count})
    db.session.commit()
    click.echo(f"Re-encrypted {count} rows under the first key.")


def sandbox_group() -> click.Group:
    """`sandbox xero|cliniko|seed`: the emulators' own commands (SPEC §14)."""
    group = click.Group("sandbox", help="Run the Xero and Cliniko sandbox emulators.")
    try:
        from sandbox.xero.cli import xero_command

        group.add_command(xero_command, "xero")
    except ImportError:  # the emulators are optional in a slim deploy
        pass
    try:
        from sandbox.cliniko.cli import cliniko_command, seed_command

        group.add_command(cliniko_command, "cliniko")
        group.add_command(seed_command, "seed")
    except ImportError:
        pass
    return group


def init_app(app: Flask) -> None:
    """Attach the command groups."""
    from webapp.sync_cli import sync_cli

    for group in (users_cli, practices_cli, keys_cli, sync_cli):
        app.cli.add_command(group)
    app.cli.add_command(sandbox_group())
