"""Login and logout, throttled per IP and per account."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.audit import record
from webapp.auth.forms import LoginForm
from webapp.auth.redirects import safe_next
from webapp.auth.users import authenticate
from webapp.extensions import db, limiter

logger = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


def _account_key() -> str:
    return "login-account:" + (request.form.get("email") or "").strip().lower()


def _ip_limit() -> str:
    return current_app.config["LOGIN_ATTEMPTS_PER_IP"]


def _account_limit() -> str:
    return current_app.config["LOGIN_ATTEMPTS_PER_ACCOUNT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"], error_message="Too many login attempts from your address.")
@limiter.limit(
    _account_limit,
    key_func=_account_key,
    methods=["POST"],
    error_message="Too many login attempts for this account.",
)
def login():
    """Show the form; on a valid POST, start a fresh session and go to `next` (local only)."""
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next"), url_for("admin.index")))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is None:
            db.session.commit()  # keep the failed-login count
            logger.info("failed login for %s from %s", form.email.data.lower(), request.remote_addr)
            flash("Wrong email or password.", "error")
            return render_template("auth/login.html", form=form), 401
        # A new session at login (no fixation): drop whatever the anonymous session held.
        session.clear()
        login_user(user)
        session.permanent = True
        record("login", user=user, object_type="user", object_id=user.id)
        db.session.commit()
        return redirect(safe_next(request.args.get("next"), url_for("admin.index")))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """End the session (POST with CSRF token)."""
    record("logout", user=current_user, object_type="user", object_id=current_user.id)
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
