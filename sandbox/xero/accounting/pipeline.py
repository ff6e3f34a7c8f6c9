"""The path every accounting call takes: size, bearer, tenant, limits, faults, idempotency, handler."""

import functools
import logging

from flask import Blueprint, Response, request

from sandbox.xero.accounting.batch import BodyError, body_error_response
from sandbox.xero.accounting.context import Ctx
from sandbox.xero.accounting.where import WhereError
from sandbox.xero.faults import DroppedConnection
from sandbox.xero.idempotency import MAX_KEY_LENGTH, fingerprint
from sandbox.xero.responses import api_error, problem
from sandbox.xero.service import current_sandbox
from sandbox.xero.tokens import BearerError

logger = logging.getLogger(__name__)

bp = Blueprint("xero_accounting", __name__, url_prefix="/api.xro/2.0")


def accounting_route(rule: str, methods: list[str]):
    """Register `handler(ctx, **path_args)` on the accounting blueprint behind the full pipeline."""

    def decorate(handler):
        @functools.wraps(handler)
        def view(**kwargs):
            return run(handler, kwargs)

        bp.add_url_rule(rule, endpoint=handler.__name__, view_func=view, methods=methods)
        return handler

    return decorate


def _rate_limited(headers: dict, problem_name: str, retry_after: int | None) -> Response:
    extra = dict(headers)
    extra["X-Rate-Limit-Problem"] = problem_name
    if retry_after is not None:
        extra["Retry-After"] = str(retry_after)
    return problem(429, "Too Many Requests", f"Rate limit exceeded: {problem_name}", extra)


def run(handler, kwargs: dict) -> Response:
    """Apply Xero's gatekeeping to one call, then the handler; always adds the limit headers."""
    sb = current_sandbox()
    settings = sb.settings
    if request.content_length and request.content_length > settings.max_body_bytes:
        return problem(
            settings.body_too_large_status,
            "Request Entity Too Large",
            "The request body exceeds the 3.5MB size limit",
        )
    try:
        grant = sb.identity.bearer(request.headers.get("Authorization"))
    except BearerError as exc:
        response = problem(401, "Unauthorized", exc.detail)
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    tenant_id = (request.headers.get("xero-tenant-id") or "").strip()
    org = sb.store.org(tenant_id)
    if org is None or not sb.identity.connected(grant, tenant_id):
        return problem(403, "Forbidden", "AuthenticationUnsuccessful")
    client_id = grant["client_id"]
    admission = sb.limiter.admit(client_id, org.tenant_id, sb.limiter.day_limit(org))
    if not admission.allowed:
        sb.limiter.record_status(org.tenant_id, 429)
        return _rate_limited(admission.headers, admission.problem, admission.retry_after)
    try:
        response = _admitted(sb, handler, kwargs, org, client_id)
    finally:
        sb.limiter.release(org.tenant_id)
    for name, value in admission.headers.items():
        response.headers[name] = value
    sb.limiter.record_status(org.tenant_id, response.status_code)
    return response


def _admitted(sb, handler, kwargs: dict, org, client_id: str) -> Response:
    decision = sb.faults.decide(request.method, request.path, org.tenant_id)
    sb.faults.wait(decision.delay)
    if decision.kind == "error":
        status = sb.faults.error_status
        title = {
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }[status]
        return problem(
            status,
            title,
            "An error occurred in Xero. Check the API Status page "
            "http://status.developer.xero.com for current service status.",
        )
    if decision.kind == "timeout":
        sb.faults.hang()
        return problem(504, "Gateway Timeout", "The upstream service did not respond in time")
    if decision.kind == "rate_limit":
        sb.limiter.record_status(org.tenant_id, 429)
        headers = {"X-Rate-Limit-Problem": "minute", "Retry-After": str(sb.faults.retry_after)}
        return problem(429, "Too Many Requests", "Rate limit exceeded: minute", headers)
    unitdp = 4 if request.args.get("unitdp", "").strip() == "4" else 2
    ctx = Ctx(sb, org, client_id, unitdp)
    key = request.headers.get("Idempotency-Key")
    if key is not None and request.method in ("PUT", "POST", "PATCH"):
        response = _idempotent(sb, handler, kwargs, ctx, key)
    else:
        response = _call(handler, ctx, kwargs)
    if decision.kind == "drop":
        logger.info("sandbox fault: dropping the connection after %s %s", request.method, request.path)
        return Response(DroppedConnection(request.environ), status=200, mimetype="application/json")
    return response


def _call(handler, ctx: Ctx, kwargs: dict) -> Response:
    try:
        return handler(ctx, **kwargs)
    except BodyError as exc:
        return body_error_response(exc)
    except WhereError as exc:
        return api_error(16, "QueryParseException", str(exc))


def _idempotent(sb, handler, kwargs: dict, ctx: Ctx, key: str) -> Response:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        return api_error(
            10, "ValidationException", f"Idempotency-Key must be between 1 and {MAX_KEY_LENGTH} characters"
        )
    scope = (ctx.client_id, ctx.org.tenant_id, key)
    print_ = fingerprint(
        request.method, request.path, request.query_string.decode("latin-1"), request.get_data(cache=True)
    )
    outcome, entry = sb.idempotency.begin(scope, print_)
    if outcome == "replay":
        return Response(entry.body, status=entry.status, content_type=entry.content_type)
    if outcome == "conflict":
        return api_error(10, "ValidationException", f"Idempotency Key {key} is used with a different request")
    stored = None
    try:
        response = _call(handler, ctx, kwargs)
        stored = response
    finally:
        if stored is not None:
            sb.idempotency.finish(scope, print_, stored.status_code, stored.get_data(), stored.content_type)
        else:
            sb.idempotency.finish(scope, print_, None)
    return response
