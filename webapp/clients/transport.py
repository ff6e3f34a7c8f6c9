"""One HTTP exchange with timing and a CallRecord; network failures split into not-sent vs ambiguous."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .errors import AmbiguousError, CallRecord, ConfigurationError, NetworkError, NotSentError

log = logging.getLogger(__name__)


def network_error(exc: requests.RequestException, record: CallRecord) -> NetworkError | ConfigurationError:
    """Classify a requests exception: nothing sent (safe to resend) or sent without an answer."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return NotSentError(f"connect timeout: {record.method} {record.url}", call=record)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return AmbiguousError(f"read timeout: {record.method} {record.url}", call=record)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema):
        return ConfigurationError(f"bad URL {record.url!r}: {exc}", call=record)
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        # NewConnectionError covers refused connections and DNS failures: the request never left.
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            return NotSentError(f"cannot connect: {record.method} {record.url}", call=record)
    # Anything else happened after the request may have been written: the outcome is unknown.
    return AmbiguousError(
        f"connection lost: {record.method} {record.url} ({type(exc).__name__})", call=record
    )


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
    params=None,
    body: str | None = None,
    rate_header_names: tuple[str, ...] = (),
    request_id_header: str | None = None,
) -> tuple[requests.Response, CallRecord]:
    """Send one request and read the whole body; return it with its CallRecord, or raise NetworkError."""
    record = CallRecord(method=method, url=url, started_at=time.time(),
                        idempotency_key=headers.get("Idempotency-Key"))
    started = time.monotonic()
    try:
        # stream=False: the body is read inside this call, so a drop mid-body surfaces here.
        response = session.request(
            method, url, headers=dict(headers), params=params, data=body.encode() if body else None,
            timeout=timeout, allow_redirects=False,
        )
    except requests.RequestException as exc:
        record.duration_ms = (time.monotonic() - started) * 1000
        error = network_error(exc, record)
        record.sent = isinstance(error, AmbiguousError)
        record.error = error.message
        raise error from exc
    record.duration_ms = (time.monotonic() - started) * 1000
    record.url = response.url or url
    record.status = response.status_code
    record.sent = True
    if request_id_header:
        record.request_id = response.headers.get(request_id_header)
    for name in rate_header_names:
        if name in response.headers:
            record.rate_headers[name] = response.headers[name]
    return response, record


def report(on_call: Callable[[CallRecord], None] | None, record: CallRecord | None) -> None:
    """Hand a finished CallRecord to the caller's hook; a failing hook is logged, never raised."""
    if on_call is None or record is None:
        return
    try:
        on_call(record)
    except Exception:  # a broken recorder must not turn a good call into a failure
        log.exception("on_call hook failed")


def backoff_seconds(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Delay before retry number `attempt` (1-based) of a transient read error."""
    return min(cap, base * (2 ** (attempt - 1)))
