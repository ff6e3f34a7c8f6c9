"""Identity endpoints: authorize page, token, revocation and /connections, at Xero's paths."""

import base64
import binascii
import logging
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, render_template_string, request

from sandbox.xero import fixtures, identity_pages
from sandbox.xero.responses import json_response, oauth_error, problem
from sandbox.xero.service import current_sandbox
from sandbox.xero.tokens import BearerError, OAuthError, redirect_allowed

logger = logging.getLogger(__name__)

bp = Blueprint("xero_identity", __name__)

OAUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


def _error_page(message: str, code: str, status: int = 400) -> Response:
    html = render_template_string(identity_pages.ERROR, error=message, code=code)
    return Response(html, status=status, mimetype="text/html")


def _redirect_back(redirect_uri: str, params: dict) -> Response:
    separator = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + separator + urlencode({k: v for k, v in params.items() if v is not None}), code=302)


@bp.route("/identity/connect/authorize", methods=["GET", "POST"])
def authorize():
    """The login + consent flow; auto consent redirects straight back with code and state."""
    sb = current_sandbox()
    source = request.values
    oauth = {name: source.get(name) for name in OAUTH_PARAMS if source.get(name) is not None}
    client = sb.identity.client(oauth.get("client_id"))
    if client is None:
        return _error_page("Unknown client or client not enabled", "unauthorized_client")
    redirect_uri = oauth.get("redirect_uri") or ""
    if not redirect_allowed(client, redirect_uri):
        return _error_page("Invalid redirect_uri", "invalid_request")
    state = oauth.get("state")
    if oauth.get("response_type") != "code":
        return _redirect_back(redirect_uri, {"error": "unsupported_response_type", "state": state})
    scope = " ".join((oauth.get("scope") or "").split())
    if not scope:
        return _redirect_back(redirect_uri, {"error": "invalid_scope", "state": state})

    if sb.settings.consent_skipped():
        user_id = sb.identity.default_user()
        tenant = sb.identity.user(user_id)["tenant_ids"][0]
        code = sb.identity.consent(oauth["client_id"], user_id, [tenant], scope, redirect_uri)
        return _redirect_back(redirect_uri, {"code": code, "scope": scope, "state": state})

    page_args = {"oauth": oauth, "action": request.path, "app_name": client["name"]}
    step = request.form.get("step") if request.method == "POST" else None
    if step == "login":
        user_id = sb.identity.user_by_login(request.form.get("email", ""), request.form.get("password", ""))
        if user_id is None:
            return _login_page(page_args, "Your email or password is incorrect", request.form.get("email", ""))
        return _consent_page(sb, page_args, user_id, sb.identity.start_login(user_id), scope)
    if step == "consent":
        user_id = sb.identity.login_user(request.form.get("login_ticket"))
        if user_id is None:
            return _login_page(page_args, "Your session has expired; please log in again", "")
        if request.form.get("decision") != "allow":
            return _redirect_back(redirect_uri, {"error": "access_denied", "state": state})
        tenant_id = (request.form.get("tenant_id") or "").lower()
        if tenant_id not in sb.identity.user(user_id)["tenant_ids"]:
            return _consent_page(sb, page_args, user_id, request.form.get("login_ticket"), scope)
        code = sb.identity.consent(oauth["client_id"], user_id, [tenant_id], scope, redirect_uri)
        return _redirect_back(redirect_uri, {"code": code, "scope": scope, "state": state})
    return _login_page(page_args, None, "")


def _login_page(page_args: dict, error: str | None, email: str) -> Response:
    html = render_template_string(
        identity_pages.LOGIN,
        error=error,
        email=email,
        hint_email=fixtures.DEFAULT_USER_EMAIL,
        hint_password=fixtures.DEFAULT_USER_PASSWORD,
        **page_args,
    )
    return Response(html, status=200, mimetype="text/html")


def _consent_page(sb, page_args: dict, user_id: str, ticket: str, scope: str) -> Response:
    user = sb.identity.user(user_id)
    orgs = [{"tenant_id": tid, "name": sb.store.org(tid).name} for tid in user["tenant_ids"] if sb.store.org(tid)]
    html = render_template_string(
        identity_pages.CONSENT,
        user_email=user["email"],
        ticket=ticket,
        scopes=scope.split(),
        orgs=orgs,
        **page_args,
    )
    return Response(html, status=200, mimetype="text/html")


def _client_credentials() -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return request.form.get("client_id"), request.form.get("client_secret")


@bp.route("/connect/token", methods=["POST"])
def token():
    """Token endpoint: authorization_code and refresh_token grants, client authenticated by Basic auth."""
    sb = current_sandbox()
    try:
        client_id, secret = _client_credentials()
        sb.identity.authenticate_client(client_id, secret)
        grant_type = request.form.get("grant_type")
        if grant_type == "authorization_code":
            tokens = sb.identity.exchange_code(client_id, request.form.get("code"), request.form.get("redirect_uri"))
        elif grant_type == "refresh_token":
            tokens = sb.identity.refresh(client_id, request.form.get("refresh_token"))
        else:
            raise OAuthError("unsupported_grant_type")
    except OAuthError as exc:
        logger.info("token request refused: %s", exc.error)
        return oauth_error(exc.error, exc.status, exc.description)
    response = json_response(tokens)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/connect/revocation", methods=["POST"])
def revocation():
    """Revoke a refresh token: its grant dies and the user's connections for the app are removed."""
    sb = current_sandbox()
    try:
        client_id, secret = _client_credentials()
        sb.identity.authenticate_client(client_id, secret)
    except OAuthError as exc:
        return oauth_error(exc.error, exc.status)
    sb.identity.revoke(client_id, request.form.get("token"))
    return Response(status=200)


def _grant_or_401():
    sb = current_sandbox()
    try:
        return sb.identity.bearer(request.headers.get("Authorization")), None
    except BearerError as exc:
        return None, problem(401, "Unauthorized", exc.detail)


@bp.route("/connections", methods=["GET"])
@bp.route("/Connections", methods=["GET"])
def connections():
    """GET /connections (optionally ?authEventId=)."""
    sb = current_sandbox()
    grant, error = _grant_or_401()
    if error:
        return error
    rows = sb.identity.connections(grant)
    event = request.args.get("authEventId")
    if event:
        rows = [row for row in rows if row["authEventId"] == event.lower()]
    return json_response(rows, headers=sb.limiter.app_call(grant["client_id"]))


@bp.route("/connections/<connection_id>", methods=["DELETE"])
@bp.route("/Connections/<connection_id>", methods=["DELETE"])
def delete_connection(connection_id):
    """DELETE /connections/{id}: 204, or 404 when unknown."""
    sb = current_sandbox()
    grant, error = _grant_or_401()
    if error:
        return error
    headers = sb.limiter.app_call(grant["client_id"])
    if not sb.identity.disconnect(grant, connection_id.lower()):
        response = problem(404, "Not Found", "Connection not found")
    else:
        response = Response(status=204)
    for name, value in headers.items():
        response.headers[name] = value
    return response
