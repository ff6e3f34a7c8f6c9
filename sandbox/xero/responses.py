"""JSON responses in Xero's shapes: envelopes, problem details, ValidationException, OAuth errors."""

import json
import uuid
from decimal import Decimal

from flask import Response

from sandbox.xero.dates import envelope_timestamp


def _default(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    """Serialise `payload` (Decimals as numbers) into a JSON response."""
    body = json.dumps(payload, default=_default, separators=(",", ":"))
    response = Response(body, status=status, mimetype="application/json")
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def envelope(key: str, items: list, provider_name: str, now_ms: int, extra: dict | None = None) -> dict:
    """The success envelope: Id, Status, ProviderName, DateTimeUTC and the plural key."""
    payload = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": provider_name,
        "DateTimeUTC": envelope_timestamp(now_ms),
    }
    if extra:
        payload.update(extra)
    payload[key] = items
    return payload


def problem(status: int, title: str, detail: str, headers: dict | None = None) -> Response:
    """Xero's gateway error body (401/403/404/429/5xx), as seen from api.xero.com."""
    payload = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return json_response(payload, status, headers)


def api_error(
    error_number: int, error_type: str, message: str, elements: list | None = None, status: int = 400
) -> Response:
    """An Accounting API error in the spec's `Error` schema."""
    payload = {"ErrorNumber": error_number, "Type": error_type, "Message": message}
    if elements is not None:
        payload["Elements"] = elements
    return json_response(payload, status)


def validation_exception(elements: list) -> Response:
    """400 ValidationException listing the elements that failed."""
    return api_error(10, "ValidationException", "A validation exception occurred", elements)


def validation_message(message: str) -> Response:
    """400 ValidationException for a request-level problem (one element, one message)."""
    return validation_exception([{"ValidationErrors": [{"Message": message}]}])


def post_data_invalid(message: str) -> Response:
    """400 PostDataInvalidException: the body could not be read."""
    return api_error(14, "PostDataInvalidException", message)


def not_found() -> Response:
    """404 as Xero answers for an unknown resource id."""
    return Response("The resource you're looking for cannot be found", status=404, mimetype="text/plain")


def oauth_error(error: str, status: int = 400, description: str | None = None) -> Response:
    """An OAuth 2.0 error body from the identity server, e.g. `{"error":"invalid_grant"}`."""
    payload = {"error": error}
    if description:
        payload["error_description"] = description
    response = json_response(payload, status)
    response.headers["Cache-Control"] = "no-store"
    return response
