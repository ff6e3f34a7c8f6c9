"""Forms of the practice setup screens (Flask-WTF: CSRF on every POST)."""

from __future__ import annotations

from zoneinfo import available_timezones

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from webapp.practices import SLUG_RE


def _time_zone(form, field) -> None:
    if field.data not in available_timezones():
        raise ValidationError("Use an IANA time zone such as Australia/Sydney.")


class PracticeCreateForm(FlaskForm):
    """A new practice: name, slug, Cliniko key, time zone."""

    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    slug = StringField(
        "Slug", validators=[DataRequired(), Regexp(SLUG_RE, message="Lowercase letters, digits and dashes.")]
    )
    cliniko_api_key = PasswordField("Cliniko API key", validators=[DataRequired(), Length(max=200)])
    time_zone = StringField("Time zone", default="Australia/Sydney", validators=[DataRequired(), _time_zone])


class ClinikoKeyForm(FlaskForm):
    """Replace the practice's Cliniko API key."""

    cliniko_api_key = PasswordField("New Cliniko API key", validators=[DataRequired(), Length(max=200)])


class DefaultsForm(FlaskForm):
    """Default accounts and tax-exempt rate, chosen from the organisation's lists."""

    sales_account = SelectField("Default sales account", validators=[DataRequired()])
    payment_account = SelectField("Default payment account", validators=[DataRequired()])
    rounding_account = SelectField("Rounding account", validators=[Optional()])
    tax_exempt = SelectField("Tax-exempt rate (for unmapped Cliniko taxes)", validators=[Optional()])

    def fill_choices(self, accounts, tax_rates) -> None:
        """Only active accounts and rates; sales from revenue types, payments from bank/payments-enabled."""
        active = [a for a in accounts if a.status == "ACTIVE" and a.code]
        label = lambda a: (a.code, f"{a.code} · {a.name}")  # noqa: E731
        self.sales_account.choices = [label(a) for a in active if a.type in ("REVENUE", "SALES", "OTHERINCOME")]
        self.payment_account.choices = [
            label(a) for a in active if a.type == "BANK" or a.enable_payments_to_account
        ]
        self.rounding_account.choices = [("", "— none —")] + [label(a) for a in active]
        self.tax_exempt.choices = [("", "— none —")] + [
            (t.tax_type, f"{t.name} ({t.tax_type})") for t in tax_rates if t.status == "ACTIVE"
        ]
