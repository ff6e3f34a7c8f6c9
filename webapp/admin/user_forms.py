"""Forms of the Users and Activity screens (CSRF through Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from webapp.models import ROLES

ALL_PRACTICES = ""


class _ScopeMixin:
    def fill_scopes(self, practices, scoped_to: int | None) -> None:
        """Practice choices: a scoped admin can only give their own practice."""
        choices = [(str(p.id), p.name) for p in practices]
        if scoped_to is None:
            choices.insert(0, (ALL_PRACTICES, "All practices"))
        else:
            choices = [c for c in choices if c[0] == str(scoped_to)]
        self.practice.choices = choices

    def practice_id(self) -> int | None:
        value = self.practice.data
        return int(value) if value else None


class InviteForm(_ScopeMixin, FlaskForm):
    """Invite a person: email, role, practice scope."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=[(r, r) for r in ROLES], default="support")
    practice = SelectField("Practice scope", choices=[], validate_choice=True)


class EditUserForm(_ScopeMixin, FlaskForm):
    """Change a user's role and practice scope."""

    role = SelectField("Role", choices=[(r, r) for r in ROLES])
    practice = SelectField("Practice scope", choices=[], validate_choice=True)


class ActivityFilterForm(FlaskForm):
    """GET filters of the Activity screen (no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    practice = SelectField("Practice", choices=[], validate_choice=False)
    user = StringField("User (email)", validators=[Optional(), Length(max=254)])
    action = SelectField("Action", choices=[], validate_choice=False)
    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])
