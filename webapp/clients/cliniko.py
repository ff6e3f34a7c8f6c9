"""Read-only Cliniko API client: shard routing, Basic auth, paging generators, bulk reads, rate budget."""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from . import money_json
from .cliniko_records import convert
from .errors import (
    AuthError,
    BadResponseError,
    CallRecord,
    ClientError,
    ConfigurationError,
    ErrorPageError,
    InvalidApiKeyError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnexpectedStatusError,
    ValidationError,
)
from .rate_limit import RateBudget, key_fingerprint
from .transport import backoff_seconds, report, send

log = logging.getLogger(__name__)

_SHARD = re.compile(r"^\w{2}\d{1,2}$")
_EMAIL = re.compile(r"[^\s@()<>,;]+@[^\s@()<>,;]+\.[A-Za-z]{2,}")
MAX_PER_PAGE = 100


def shard_from_api_key(api_key: str) -> str:
    """The shard named by the key's `-xx9` suffix (`au1` if none); a bad suffix → InvalidApiKeyError."""
    key = (api_key or "").strip()
    if not key:
        raise InvalidApiKeyError("The Cliniko API key is empty.")
    if "-" not in key:
        return "au1"
    suffix = key.rsplit("-", 1)[1]
    if not _SHARD.match(suffix):
        raise InvalidApiKeyError(
            "The Cliniko API key ends in an unknown region suffix; paste the whole key as Cliniko shows it "
            "(it ends in something like -au2)."
        )
    return suffix.lower()


def base_url_for_key(api_key: str) -> str:
    """`https://api.{shard}.cliniko.com/v1` for the key's shard."""
    return f"https://api.{shard_from_api_key(api_key)}.cliniko.com/v1"


def _iso(ts: datetime) -> str:
    """A Cliniko filter timestamp: UTC, whole seconds (rounded down, so nothing is skipped), `Z`."""
    if ts.tzinfo is None:
        raise ValueError("updated_at cursor must be timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunks(ids: Iterable[Any], size: int) -> Iterator[list[str]]:
    seen: dict[str, None] = {}
    for value in ids:
        if value is None or str(value) == "":
            continue
        text = str(value)
        if not text.isdigit():
            raise ValueError(f"not a Cliniko id: {text!r}")
        seen.setdefault(text, None)
    unique = list(seen)
    for start in range(0, len(unique), size):
        yield unique[start:start + size]


@dataclass
class ConnectionInfo:
    """What "Test connection" shows: the account and its businesses."""

    account_name: str | None
    country: str | None
    country_code: str | None
    currency: str | None  # Cliniko exposes only a currency *symbol*
    subdomain: str | None
    businesses: list[dict] = field(default_factory=list)


class ClinikoClient:
    """Cliniko API v1 reader; list methods are generators that follow `links.next`."""

    def __init__(
        self,
        api_key: str,
        user_agent: str,
        *,
        api_url: str | None = None,
        budget: RateBudget | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retries: int = 3,
        max_rate_wait: float = 65.0,
        per_page: int = MAX_PER_PAGE,
        id_chunk: int = MAX_PER_PAGE,
        max_pages: int = 10_000,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        if not user_agent or not _EMAIL.search(user_agent):
            raise ConfigurationError(
                "The Cliniko User-Agent must name the app and a contact email, e.g. 'Sync (ops@example.com)'."
            )
        self._api_key = api_key.strip() if api_key else ""
        # Validate the key's shard even when the URL is overridden: a bad key is reported the same way.
        shard = shard_from_api_key(self._api_key)
        if api_url:
            base = api_url.rstrip("/")
            self.base_url = base if base.endswith("/v1") else base + "/v1"
        else:
            self.base_url = f"https://api.{shard}.cliniko.com/v1"
        self.shard = shard
        self.user_agent = user_agent
        self.budget = budget
        self.budget_key = key_fingerprint(self._api_key)
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.max_rate_wait = max_rate_wait
        self.per_page = max(1, min(per_page, MAX_PER_PAGE))
        self.id_chunk = max(1, id_chunk)
        self.max_pages = max_pages
        self.session = session or requests.Session()
        self.sleep = sleep
        self.on_call = on_call
        self.last_call: CallRecord | None = None

    def __repr__(self) -> str:  # never show the key
        return f"<ClinikoClient {self.base_url} key=…{self.budget_key[:6]}>"

    # -- transport ------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self._api_key}:".encode()).decode()
        return {"Accept": "application/json", "User-Agent": self.user_agent,
                "Authorization": f"Basic {token}"}

    def _get_json(self, url: str, params=None) -> Any:
        """GET one URL with budget, bounded retries for transient errors, and a bounded 429 wait."""
        deadline = time.monotonic() + self.max_rate_wait
        attempt = 0
        for _ in range(self.max_retries + 50):  # hard bound; 429 waits are also bounded by deadline
            attempt += 1
            if self.budget is not None:
                remaining = max(0.0, deadline - time.monotonic())
                self.budget.acquire_blocking(self.budget_key, remaining, sleep=self.sleep)
            record: CallRecord | None = None
            try:
                response, record = send(
                    self.session, "GET", url, headers=self._headers(), params=params, timeout=self.timeout,
                    rate_header_names=("X-RateLimit-Reset", "X-RateLimit-Limit", "X-RateLimit-Remaining"),
                )
                return self._parse(response, record)
            except RateLimitedError as exc:
                wait = exc.retry_after if exc.retry_after is not None else backoff_seconds(attempt)
                if self.budget is not None:  # tell every other process sharing this key
                    self.budget.park(self.budget_key, self.budget.clock() + wait, "minute")
                if time.monotonic() + wait > deadline:
                    raise
                log.info("cliniko rate limited; waiting %.1fs", wait)
                self.sleep(wait)
                attempt -= 1  # a 429 wait is not a failed attempt
            except ClientError as exc:
                if not exc.transient or attempt > self.max_retries:
                    raise
                delay = backoff_seconds(attempt)
                log.warning("cliniko %s (attempt %d), retrying in %.1fs", type(exc).__name__, attempt, delay)
                self.sleep(delay)
            finally:
                if record is not None:
                    self.last_call = record
                    report(self.on_call, record)
        raise ClientError("Cliniko request retry bound reached")

    def _parse(self, response: requests.Response, record: CallRecord) -> Any:
        status = response.status_code
        kw = {"status": status, "call": record}
        if status == 429:
            reset = _float(response.headers.get("X-RateLimit-Reset"))
            # At least a short pause even if the reset looks past (clock skew between us and Cliniko).
            retry_after = None if reset is None else max(0.5, reset - time.time())
            if retry_after is None:
                retry_after = _float(response.headers.get("Retry-After"))
            record.error = "rate limited"
            raise RateLimitedError("Cliniko rate limit reached", retry_after=retry_after, reset_at=reset,
                                   **kw)
        if status in (401, 403):
            record.error = "auth"
            text = "The Cliniko API key was refused." if status == 401 else \
                "This Cliniko API key's user is not allowed to read this (check the user's role)."
            raise AuthError(text, detail=_snippet(response), **kw)
        if status == 404:
            raise NotFoundError(f"Not found in Cliniko: {urlsplit(response.url).path}", **kw)
        if status >= 500:
            record.error = f"server error {status}"
            if "json" not in response.headers.get("Content-Type", "").lower():
                raise ErrorPageError(f"Cliniko server error {status} (an error page, not JSON)",
                                     detail=_snippet(response), **kw)
            raise ServerError(f"Cliniko server error {status}", detail=_snippet(response), **kw)
        body = self._json(response, record)
        if status in (400, 422):
            errors = body.get("errors") if isinstance(body, dict) else None
            messages = [f"{k}: {v}" for k, v in errors.items()] if isinstance(errors, dict) else []
            message = body.get("message") if isinstance(body, dict) else None
            raise ValidationError(str(message or f"Cliniko refused the request ({status})"),
                                  messages=messages, detail=body, **kw)
        if not 200 <= status < 300:
            raise UnexpectedStatusError(f"Unexpected Cliniko status {status}", detail=body, **kw)
        return body

    @staticmethod
    def _json(response: requests.Response, record: CallRecord) -> Any:
        ctype = response.headers.get("Content-Type", "")
        if "json" not in ctype.lower():
            record.error = "not JSON"
            raise BadResponseError(f"Cliniko answered with {ctype or 'no content type'}, not JSON",
                                   status=response.status_code, call=record, detail=_snippet(response))
        try:
            return money_json.loads(response.content)
        except ValueError as exc:
            record.error = "malformed JSON"
            raise BadResponseError("Cliniko answered with malformed JSON", status=response.status_code,
                                   call=record, detail=_snippet(response)) from exc

    def get(self, path: str, params=None) -> Any:
        """GET `path` (relative to the base URL) and return the parsed JSON (money as Decimal)."""
        return self._get_json(f"{self.base_url}/{path.lstrip('/')}", params)

    def paginate(self, path: str, resource: str,
                 params: list[tuple[str, str]] | None = None) -> Iterator[dict]:
        """Yield every record of a list endpoint, following `links.next` (bounded by max_pages)."""
        query = list(params or [])
        if not any(k == "per_page" for k, _ in query):
            query.append(("per_page", str(self.per_page)))
        url: str | None = f"{self.base_url}/{path.lstrip('/')}"
        base = urlsplit(self.base_url)
        visited: set[str] = set()
        for _ in range(self.max_pages):
            if url is None:
                return
            page = self._get_json(url, query)
            if not isinstance(page, dict) or not isinstance(page.get(resource), list):
                raise BadResponseError(f"Cliniko list without '{resource}'", call=self.last_call)
            for record in page[resource]:
                yield convert(record)
            next_url = (page.get("links") or {}).get("next") if isinstance(page.get("links"), dict) else None
            if next_url:
                parts = urlsplit(next_url)
                # Never send the key to a host other than the one we were configured with.
                if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or next_url in visited:
                    raise BadResponseError(f"Cliniko gave a bad next link: {next_url}", call=self.last_call)
                visited.add(next_url)
            url, query = next_url, None
        raise BadResponseError(f"more than {self.max_pages} pages of {resource}", call=self.last_call)

    def _by_ids(self, path: str, resource: str, field_name: str, ids: Iterable[Any],
                extra: list[tuple[str, str]] = ()) -> Iterator[dict]:
        for chunk in _chunks(ids, self.id_chunk):
            yield from self.paginate(path, resource, [("q[]", f"{field_name}:={','.join(chunk)}"), *extra])

    # -- resources ------------------------------------------------------------------------------
    def settings(self) -> dict:
        """`/settings`: the account (name, country, currency symbol) and feature flags."""
        return convert(self.get("settings"))

    def test_connection(self) -> ConnectionInfo:
        """Read `/settings` and `/businesses`; AuthError with a clear message if the key is wrong."""
        account = (self.settings() or {}).get("account") or {}
        return ConnectionInfo(
            account_name=account.get("name"),
            country=account.get("country"),
            country_code=account.get("country_code"),
            currency=account.get("currency_symbol"),
            subdomain=account.get("subdomain"),
            businesses=list(self.businesses()),
        )

    def businesses(self, ids: Iterable[Any] | None = None) -> Iterator[dict]:
        """Businesses (locations), archived included; all, or those with the given ids."""
        extra = [("q[]", "archived_at:*")]
        if ids is None:
            return self.paginate("businesses", "businesses", extra)
        return self._by_ids("businesses", "businesses", "id", ids, extra)

    def practitioners(self, ids: Iterable[Any] | None = None) -> Iterator[dict]:
        """Active practitioners; all, or those with the given ids."""
        if ids is None:
            return self.paginate("practitioners", "practitioners")
        return self._by_ids("practitioners", "practitioners", "id", ids)

    def inactive_practitioners(self) -> Iterator[dict]:
        """Practitioners no longer active (`/practitioners/inactive`)."""
        return self.paginate("practitioners/inactive", "practitioners")

    def patients(self, ids: Iterable[Any]) -> Iterator[dict]:
        """Patients by id (archived included; Cliniko never lists deleted ones), `id_chunk` ids a request."""
        return self._by_ids("patients", "patients", "id", ids, [("q[]", "archived_at:*")])

    def invoices(self, ids: Iterable[Any]) -> Iterator[dict]:
        """Invoices by id, archived and deleted included."""
        return self._by_ids("invoices", "invoices", "id", ids,
                            [("q[]", "archived_at:*"), ("q[]", "deleted_at:*")])

    def invoices_updated_since(self, since: datetime, *, include_archived: bool = True,
                               include_deleted: bool = True) -> Iterator[dict]:
        """Invoices with `updated_at >= since`, oldest change first (archived and deleted included)."""
        return self.paginate("invoices", "invoices", self._updated_params(since, include_archived,
                                                                         include_deleted))

    def invoice_items(self, invoice_ids: Iterable[Any]) -> Iterator[dict]:
        """Line items of the given invoices (`q[]=invoice_id:=…`), archived and deleted included."""
        return self._by_ids("invoice_items", "invoice_items", "invoice_id", invoice_ids,
                            [("q[]", "archived_at:*"), ("q[]", "deleted_at:*")])

    def billable_items(self) -> Iterator[dict]:
        """Every billable item, archived included."""
        return self.paginate("billable_items", "billable_items", [("q[]", "archived_at:*")])

    def products(self) -> Iterator[dict]:
        """Every product, archived included."""
        return self.paginate("products", "products", [("q[]", "archived_at:*")])

    def taxes(self) -> Iterator[dict]:
        """Every tax."""
        return self.paginate("taxes", "taxes")

    def appointment_types(self) -> Iterator[dict]:
        """Every appointment type, archived included."""
        return self.paginate("appointment_types", "appointment_types", [("q[]", "archived_at:*")])

    def individual_appointments_updated_since(self, since: datetime, *, include_archived: bool = True,
                                              include_deleted: bool = True) -> Iterator[dict]:
        """Appointments changed since `since` (cancelled/archived and deleted included)."""
        params = self._updated_params(since, include_archived, include_deleted)
        if include_archived:
            params.append(("q[]", "cancelled_at:*"))
        return self.paginate("individual_appointments", "individual_appointments", params)

    def appointments_ended_between(self, start: datetime, end: datetime) -> Iterator[dict]:
        """Appointments that ended in [start, end), oldest first (cancelled, archived and deleted left out)."""
        return self.paginate("individual_appointments", "individual_appointments", [
            ("q[]", f"ends_at:>={_iso(start)}"), ("q[]", f"ends_at:<{_iso(end)}"), ("sort", "ends_at")])

    def concession_types(self) -> Iterator[dict]:
        """Every concession type (Pensioner, Student, …)."""
        return self.paginate("concession_types", "concession_types")

    def concession_prices(self) -> Iterator[dict]:
        """Every concession price (a billable item's price for one concession type)."""
        return self.paginate("concession_prices", "concession_prices")

    @staticmethod
    def _updated_params(since: datetime, archived: bool, deleted: bool) -> list[tuple[str, str]]:
        params = [("q[]", f"updated_at:>={_iso(since)}"), ("sort", "updated_at")]
        if archived:
            params.append(("q[]", "archived_at:*"))
        if deleted:
            params.append(("q[]", "deleted_at:*"))
        return params


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _snippet(response: requests.Response, limit: int = 500) -> str:
    try:
        return response.text[:limit]
    except Exception:  # undecodable bodies are shown as nothing rather than failing the error path
        return ""
