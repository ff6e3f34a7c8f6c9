"""Request bodies and batch responses: the plural key, summarizeErrors, single-element endpoints."""

import json

from flask import request

from sandbox.xero.responses import envelope, json_response, post_data_invalid, validation_exception


class BodyError(Exception):
    """The body is not JSON or not the expected shape."""


def read_body():
    """The parsed JSON body; BodyError when it is not JSON."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BodyError("The request body is empty")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"JSON for the request could not be deserialised: {exc}") from exc


def elements(body, key: str) -> list:
    """The elements of a batch body: `{"Invoices": [...]}`, a bare list, or one object."""
    if isinstance(body, dict) and key in body:
        items = body[key]
        if not isinstance(items, list):
            raise BodyError(f"{key} must be a list")
        return items
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return [body]
    raise BodyError("The request body must be a JSON object")


def summarize_errors() -> bool:
    """summarizeErrors: absent behaves as true (one bad element → 400); only `false` turns it off."""
    raw = request.args.get("summarizeErrors")
    return not (raw is not None and raw.strip().lower() == "false")


def body_error_response(error: BodyError):
    """400 PostDataInvalidException for an unreadable body."""
    return post_data_invalid(str(error))


def respond(ctx, key: str, results: list[tuple[dict, list[str]]], summarize: bool):
    """Build the response of a batch: 200 envelope, or 400 ValidationException when summarizing errors."""
    failed = [view for view, errors in results if errors]
    if failed and summarize:
        return validation_exception(failed)
    views = [view for view, _ in results]
    return json_response(envelope(key, views, ctx.sandbox.settings.app_name, ctx.now_ms()))


def respond_single(ctx, key: str, view: dict, errors: list[str]):
    """Response of a single-element write (no summarizeErrors): 200 envelope or 400."""
    if errors:
        return validation_exception([view])
    return json_response(envelope(key, [view], ctx.sandbox.settings.app_name, ctx.now_ms()))
