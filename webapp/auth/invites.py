"""Invitations: a one-time password-set link (`/invite/<token>`), stored only as a hash, with an expiry.

The admin who invites someone sees the link once (and, with SMTP_URL set, it is emailed). Opening
the link lets the person choose a password once; the token is then cleared, so a second use, an
expired link or a disabled user gets a plain "this link is not valid" page.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from webapp.audit import record
from webapp.auth.passwords import hash_password, password_problem
from webapp.auth.users import UserError, find_by_email
from webapp.extensions import db, limiter
from webapp.models import ROLES, Practice, User, utcnow

logger = logging.getLogger(__name__)

INVITE_TTL = timedelta(hours=72)

bp = Blueprint("invites", __name__)


def token_hash(token: str) -> str:
    """What is stored for a token: its SHA-256 (the token has 256 random bits, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_invite(user: User, ttl: timedelta = INVITE_TTL) -> str:
    """Give the user a fresh one-time token (any older one stops working); returns the token. Caller commits."""
    token = secrets.token_urlsafe(32)
    user.invite_token_hash = token_hash(token)
    user.invite_expires_at = utcnow() + ttl
    return token


def invite_url(token: str) -> str:
    """The absolute link for a token (uses the request's host)."""
    return url_for("invites.accept", token=token, _external=True)


def create_invited_user(email: str, role: str, practice_id: int | None) -> tuple[User, str]:
    """A new user without a password, and the token of their link. Raises UserError. Caller commits."""
    email = (email or "").strip()
    if "@" not in email or len(email) > 254 or any(ch.isspace() for ch in email):
        raise UserError(f"{email!r} is not an email address.")
    if role not in ROLES:
        raise UserError(f"Role must be one of {', '.join(ROLES)}.")
    if practice_id is not None and db.session.get(Practice, practice_id) is None:
        raise UserError("That practice does not exist.")
    if find_by_email(email):
        raise UserError(f"A user with email {email} already exists.")
    user = User(email=email, password_hash=None, role=role, practice_id=practice_id, active=True,
                failed_login_count=0)
    db.session.add(user)
    db.session.flush()
    return user, issue_invite(user)


def find_invited(token: str) -> User | None:
    """The active user whose unexpired token this is, else None."""
    if not token or len(token) > 128:
        return None
    digest = token_hash(token)
    user = db.session.scalar(select(User).where(User.invite_token_hash == digest))
    if user is None or not hmac.compare_digest(user.invite_token_hash or "", digest):
        return None
    if not user.active or user.invite_expires_at is None or user.invite_expires_at <= utcnow():
        return None
    return user


def accept(token: str, password: str) -> User:
    """Set the password from a valid token and spend the token; raises UserError. Caller commits."""
    user = find_invited(token)
    if user is None:
        raise UserError("This link is not valid: it was already used, has expired, or was replaced.")
    problem = password_problem(password)
    if problem:
        raise UserError(problem)
    user.password_hash = hash_password(password)
    user.invite_token_hash = None
    user.invite_expires_at = None
    user.failed_login_count = 0
    record("user.invite_accepted", user=user, object_type="user", object_id=user.id,
           practice_id=user.practice_id)
    return user


def send_invite_email(user: User, link: str, invited_by: User | None) -> bool:
    """Email the link when SMTP_URL is set; True when sent. Never raises (the admin still sees the link)."""
    from webapp.alerts import MailError, send_mail

    if not current_app.config.get("SMTP_URL"):
        return False
    who = getattr(invited_by, "email", None) or "An administrator"
    hours = int(INVITE_TTL.total_seconds() // 3600)
    body = (
        f"{who} invited you to Cliniko → Xero Sync as {user.role}.\n\n"
        f"Choose your password here (the link works once, for {hours} hours):\n{link}\n\n"
        "If you did not expect this, ignore this email.\n"
    )
    try:
        send_mail([user.email], "Your Cliniko → Xero Sync account", body)
    except MailError as exc:
        logger.warning("invite email to user %s not sent: %s", user.id, exc)
        return False
    return True


class SetPasswordForm(FlaskForm):
    """Choose a password (twice)."""

    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("Repeat password",
                            validators=[DataRequired(), EqualTo("password", "The passwords differ.")])


@bp.route("/invite/<token>", endpoint="accept", methods=["GET", "POST"])
@limiter.limit("30 per 5 minutes", methods=["POST"], error_message="Too many attempts from your address.")
def accept_route(token: str):
    """Show the set-password form for a valid link; on success, go to the sign-in page."""
    user = find_invited(token)
    if user is None:
        return render_template("auth/invite.html", form=None, invalid=True), 404
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            accept(token, form.password.data)
        except UserError as exc:
            db.session.rollback()
            form.password.errors.append(str(exc))
        else:
            db.session.commit()
            if current_user.is_authenticated:
                logout_user()
            flash("Your password is set. Sign in with it.", "info")
            return redirect(url_for("auth.login"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/invite.html", form=form, email=user.email, invalid=False), status

