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


class OrganisationDefaultsForm(FlaskForm):
    """One Xero organisation's own default accounts and tax-exempt rate (several organisations); blank = the
    practice's."""

    sales_account = SelectField("Sales account", validators=[Optional()])
    payment_account = SelectField("Payment account", validators=[Optional()])
    rounding_account = SelectField("Rounding account", validators=[Optional()])
    tax_exempt = SelectField("Tax-exempt rate", validators=[Optional()])

    def fill_choices(self, accounts, tax_rates, practice_settings: dict, stored: dict) -> None:
        """The organisation's active accounts and rates (as DefaultsForm), after "the practice's default"; an
        archived stored value is kept and shown as such, so it is not lost silently."""
        helper = DefaultsForm(formdata=None, meta={"csrf": False})
        helper.fill_choices(accounts, tax_rates)
        known = {a.code: a for a in accounts if a.code}
        rates = {t.tax_type: t for t in tax_rates}
        for name in ("sales_account", "payment_account", "rounding_account", "tax_exempt"):
            field, source = getattr(self, name), getattr(helper, name)
            inherited = practice_settings.get(name)
            blank = ("", f"— practice's default ({inherited}) —" if inherited else "— practice's default (none) —")
            choices = [c for c in source.choices if c[0]]
            value = stored.get(name) or ""
            if value and value not in {c[0] for c in choices}:
                if name == "tax_exempt":
                    rate = rates.get(value)
                    label = f"{rate.name} ({value}) (archived in Xero)" if rate else f"{value} (not in Xero's lists)"
                else:
                    account = known.get(value)
                    label = f"{value} · {account.name} (archived or not allowed)" if account else \
                        f"{value} (not in Xero's lists)"
                choices.append((value, label))
            field.choices = [blank] + choices
