"""Typed errors raised by the Cliniko and Xero HTTP clients, and the per-call record they carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallRecord:
    """What one HTTP call did: enough for the caller to store an attempt row."""

    method: str
    url: str
    status: int | None = None
    request_id: str | None = None
    duration_ms: float = 0.0
    rate_headers: dict[str, str] = field(default_factory=dict)
    sent: bool = False
    started_at: float = 0.0
    idempotency_key: str | None = None
    error: str | None = None


class ClientError(Exception):
    """Base of every error the clients raise."""

    #: True when the same request may succeed later (timeouts, 5xx, 429, bad gateway pages).
    transient = False
    #: True when the request may have taken effect even though no usable answer came back.
    outcome_unknown = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        call: CallRecord | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.call = call
        self.detail = detail

    @property
    def request_id(self) -> str | None:
        """The provider's request id (Xero correlation id) when one was returned."""
        return self.call.request_id if self.call else None


class ConfigurationError(ClientError, ValueError):
    """The client was constructed with settings it cannot work with (bad key suffix, User-Agent, …)."""


class InvalidApiKeyError(ConfigurationError):
    """A Cliniko API key whose shard suffix is not of the form `xx9`/`xx99`."""


class AuthError(ClientError):
    """401/403: the credentials are wrong, expired, revoked, or lack access."""


class NotFoundError(ClientError):
    """404: the resource does not exist (or is not visible to these credentials)."""


class ValidationError(ClientError):
    """400/422: the provider refused the request; `messages` lists its validation messages."""

    def __init__(self, message: str, *, messages: list[str] | None = None, elements=None, **kw) -> None:
        super().__init__(message, **kw)
        self.messages = list(messages or [])
        #: Xero only: per-element outcomes parsed from the 400 body's `Elements`, when present.
        self.elements = elements or []


class UnexpectedStatusError(ClientError):
    """Any other non-success status (405, 409, 413, …): not retried."""


class TransientError(ClientError):
    """Base of the errors that may go away on their own; retry later (bounded)."""

    transient = True


class RateLimitedError(TransientError):
    """429 (or the client-side budget said no): retry no sooner than `retry_after` seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        problem: str | None = None,
        reset_at: float | None = None,
        **kw,
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        #: Xero's `X-Rate-Limit-Problem`: minute | day | concurrent | appminute (None if not given).
        self.problem = problem
        #: Epoch seconds when the limit resets (Cliniko's `X-RateLimit-Reset`), when known.
        self.reset_at = reset_at


class BudgetExhaustedError(RateLimitedError):
    """Our own shared rate budget refused the call before anything was sent."""


class ServerError(TransientError):
    """5xx from the provider."""


class BadResponseError(TransientError):
    """The answer was not what the API returns: an HTML page, malformed or unexpected JSON."""


class ErrorPageError(ServerError, BadResponseError):
    """A 5xx answered with an HTML (or other non-JSON) error page: both a server error and a bad response."""


class NetworkError(TransientError):
    """No HTTP answer was received."""


class NotSentError(NetworkError):
    """The request never reached the server (connection refused, DNS, connect timeout): safe to resend."""


class AmbiguousError(NetworkError):
    """The request was sent but no usable answer came back (read timeout, dropped connection).

    It may have been committed: reconcile (read by natural key) before sending it again.
    """

    outcome_unknown = True
