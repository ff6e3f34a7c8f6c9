"""Xero Accounting API client: batch writes with per-element outcomes, paged reads, typed errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import requests

from . import money_json
from .errors import (
    AmbiguousError,
    AuthError,
    BadResponseError,
    BudgetExhaustedError,
    CallRecord,
    ClientError,
    ErrorPageError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnexpectedStatusError,
    ValidationError,
)
from .rate_limit import RateBudget
from .transport import backoff_seconds, report, send
from .xero_results import BatchResult, ElementOutcome, match, outcome_of, sent_keys

log = logging.getLogger(__name__)

RATE_HEADERS = ("X-MinLimit-Remaining", "X-DayLimit-Remaining", "X-AppMinLimit-Remaining",
                "X-Rate-Limit-Problem", "Retry-After")
REQUEST_ID_HEADER = "Xero-Correlation-Id"
PAGE_SIZE = 100


@dataclass
class XeroResponse:
    """A parsed successful response and the record of the call that produced it."""

    data: Any
    call: CallRecord


def _check_idempotency_key(key: str) -> str:
    # Xero breaks on an empty header and caps keys at 128 characters.
    if not isinstance(key, str) or not 0 < len(key) <= 128 or key.strip() != key:
        raise ValueError("Idempotency-Key must be 1-128 characters without surrounding spaces")
    return key


def _chunks(values: Iterable[Any], size: int) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(str(v) for v in values if v not in (None, "")))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]


class XeroClient:
    """One Xero organisation (tenant) through one access-token provider."""

    def __init__(
        self,
        base_url: str,
        access_token: Callable[[], str],
        tenant_id: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        budget: RateBudget | None = None,
        read_retries: int = 2,
        page_size: int = PAGE_SIZE,
        max_pages: int = 2_000,
        ids_per_request: int = 40,
        user_agent: str = "cliniko-xero-sync",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        if not tenant_id:
            raise ValueError("tenant_id is required")
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.tenant_id = tenant_id
        self.timeout = (connect_timeout, read_timeout)
        self.budget = budget
        self.read_retries = read_retries
        self.page_size = page_size
        self.max_pages = max_pages
        self.ids_per_request = ids_per_request
        self.user_agent = user_agent
        self.session = session or requests.Session()
        self.sleep = sleep
        self.on_call = on_call
        self.last_call: CallRecord | None = None

    def __repr__(self) -> str:
        return f"<XeroClient {self.base_url} tenant={self.tenant_id}>"

    # -- transport ------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params=None, body: Any = None,
                idempotency_key: str | None = None, headers: dict[str, str] | None = None,
                collection: str | None = None) -> XeroResponse:
        """One call: GETs are retried (bounded) on transient errors; writes are sent exactly once.

        `collection` (Invoices/Contacts/Payments) lets a 400 body be read into per-element outcomes.
        """
        attempts = 1 + (self.read_retries if method == "GET" else 0)
        for attempt in range(1, attempts + 1):
            try:
                return self._once(method, path, params=params, body=body, collection=collection,
                                  idempotency_key=idempotency_key, headers=headers)
            except ClientError as exc:
                retry = exc.transient and not isinstance(exc, RateLimitedError) and attempt < attempts
                if not retry:
                    raise
                delay = backoff_seconds(attempt)
                log.warning("xero %s %s: %s; retry in %.1fs", method, path, type(exc).__name__, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, *, params, body, idempotency_key, headers,
              collection) -> XeroResponse:
        # Everything that can fail locally happens before a budget slot is taken.
        send_headers = {
            "Authorization": f"Bearer {self.access_token()}",
            "xero-tenant-id": self.tenant_id,
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        if headers:
            send_headers.update(headers)
        payload = None
        if body is not None:
            payload = money_json.dumps(body)
            send_headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            send_headers["Idempotency-Key"] = _check_idempotency_key(idempotency_key)
        decision = None
        if self.budget is not None:
            decision = self.budget.acquire(self.tenant_id)
            if not decision.go:
                raise BudgetExhaustedError(
                    f"Xero {decision.budget} budget exhausted for this organisation",
                    retry_after=decision.wait_seconds, problem=decision.budget, reset_at=decision.not_before,
                )
        url = f"{self.base_url}/{path.lstrip('/')}"
        record: CallRecord | None = None
        response = None
        try:
            response, record = send(self.session, method, url, headers=send_headers, params=params,
                                    body=payload, timeout=self.timeout, rate_header_names=RATE_HEADERS,
                                    request_id_header=REQUEST_ID_HEADER)
            return XeroResponse(self._parse(method, response, record, collection), record)
        except NetworkError as exc:
            record = exc.call
            raise
        finally:
            if self.budget is not None:
                self.budget.release(decision)
                if response is not None:
                    self.budget.observe(self.tenant_id, response.headers, response.status_code)
            if record is not None:
                self.last_call = record
                report(self.on_call, record)

    def _parse(self, method: str, response: requests.Response, record: CallRecord,
               collection: str | None = None) -> Any:
        status = response.status_code
        body = _json_or_none(response)
        if isinstance(body, dict) and not record.request_id and isinstance(body.get("Id"), str):
            record.request_id = body["Id"]
        kw = {"status": status, "call": record, "detail": body if body is not None else _snippet(response)}
        if 200 <= status < 300:
            if body is None:
                record.error = "unreadable body"
                if method == "GET":
                    raise BadResponseError("Xero answered without readable JSON", **kw)
                raise AmbiguousError(
                    f"Xero answered {status} to a write without readable JSON: it may be committed", **kw
                )
            return body
        record.error = _error_summary(status, body)
        if status == 429:
            problem = (response.headers.get("X-Rate-Limit-Problem") or "").strip().lower() or None
            retry_after = _float(response.headers.get("Retry-After"))
            raise RateLimitedError(f"Xero rate limit reached ({problem or 'unknown'})",
                                   retry_after=retry_after, problem=problem, **kw)
        if status in (401, 403):
            raise AuthError(f"Xero refused the credentials: {_auth_detail(body, response)}", **kw)
        if status == 400:
            messages, elements = _validation(body, collection)
            text = "; ".join(messages) or _snippet(response) or "Xero refused the request"
            raise ValidationError(text, messages=messages, elements=elements, **kw)
        if status == 404:
            raise NotFoundError(f"Not found in Xero: {response.request.path_url.split('?')[0]}", **kw)
        if status >= 500:
            if body is None:
                raise ErrorPageError(f"Xero server error {status} (not JSON)", **kw)
            raise ServerError(f"Xero server error {status}", **kw)
        raise UnexpectedStatusError(f"Unexpected Xero status {status}", **kw)

    # -- batch writes ---------------------------------------------------------------------------
    def _batch(self, method: str, collection: str, elements: list[dict], idempotency_key: str,
               extra_params: dict | None = None) -> BatchResult:
        elements = list(elements)
        if not elements:
            raise ValueError(f"empty {collection} batch")
        keys = sent_keys(collection, elements)
        params = {"summarizeErrors": "false", **(extra_params or {})}
        result = self.request(method, collection, params=params, body={collection: elements},
                              idempotency_key=idempotency_key, collection=collection)
        returned = result.data.get(collection) if isinstance(result.data, dict) else None
        if not isinstance(returned, list):
            # Committed or not, we cannot tell which elements exist: the caller must reconcile.
            raise AmbiguousError(f"Xero's answer has no {collection} list", status=result.call.status,
                                 call=result.call, detail=result.data)
        return match(collection, keys, returned, result.call, result.data.get("Id"))

    def create_contacts(self, contacts: list[dict], idempotency_key: str) -> BatchResult:
        """PUT /Contacts: create; outcomes keyed by ContactNumber."""
        return self._batch("PUT", "Contacts", contacts, idempotency_key)

    def update_contacts(self, contacts: list[dict], idempotency_key: str) -> BatchResult:
        """POST /Contacts: update (by ContactID) or create; outcomes keyed by ContactNumber or ContactID."""
        return self._batch("POST", "Contacts", contacts, idempotency_key)

    def create_invoices(self, invoices: list[dict], idempotency_key: str, unitdp: int = 4) -> BatchResult:
        """PUT /Invoices?unitdp=4: create; a duplicate InvoiceNumber fails instead of overwriting."""
        return self._batch("PUT", "Invoices", invoices, idempotency_key, {"unitdp": str(unitdp)})

    def update_invoices(self, invoices: list[dict], idempotency_key: str, unitdp: int = 4) -> BatchResult:
        """POST /Invoices?unitdp=4: update by InvoiceID or InvoiceNumber; outcomes keyed by InvoiceNumber."""
        return self._batch("POST", "Invoices", invoices, idempotency_key, {"unitdp": str(unitdp)})

    def create_payments(self, payments: list[dict], idempotency_key: str) -> BatchResult:
        """PUT /Payments: create; outcomes keyed by payment Reference (Xero has no payment number)."""
        return self._batch("PUT", "Payments", payments, idempotency_key)

    def delete_payment(self, payment_id: str, idempotency_key: str) -> ElementOutcome:
        """POST /Payments/{id} {"Status":"DELETED"}: remove a payment; a refusal is a ValidationError."""
        result = self.request("POST", f"Payments/{quote(payment_id)}", body={"Status": "DELETED"},
                              idempotency_key=idempotency_key, collection="Payments")
        return self._single("Payments", result)

    def void_invoice(self, invoice_id: str, idempotency_key: str, invoice_number: str | None = None,
                     ) -> ElementOutcome:
        """POST /Invoices/{id} with Status VOIDED; ValidationError (400) while payments are applied."""
        element: dict[str, Any] = {"InvoiceID": invoice_id, "Status": "VOIDED"}
        if invoice_number:
            element["InvoiceNumber"] = invoice_number
        result = self.request("POST", f"Invoices/{quote(invoice_id)}", body={"Invoices": [element]},
                              params={"unitdp": "4"}, idempotency_key=idempotency_key, collection="Invoices")
        return self._single("Invoices", result)

    @staticmethod
    def _single(collection: str, result: XeroResponse) -> ElementOutcome:
        items = result.data.get(collection) if isinstance(result.data, dict) else None
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise AmbiguousError(f"Xero's answer has no {collection} element", status=result.call.status,
                                 call=result.call, detail=result.data)
        return outcome_of(collection, items[0])

    # -- reads ----------------------------------------------------------------------------------
    def paged(self, collection: str, params: dict | None = None, *,
              modified_since: datetime | None = None) -> Iterator[dict]:
        """Yield every element of a paged GET (100 a page) until a short page; bounded by max_pages."""
        headers = None
        if modified_since is not None:
            headers = {"If-Modified-Since": format_datetime(modified_since.astimezone(UTC), usegmt=True)}
        for page in range(1, self.max_pages + 1):
            query = {**(params or {}), "page": str(page), "pageSize": str(self.page_size)}
            data = self.request("GET", collection, params=query, headers=headers).data
            items = data.get(collection) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise BadResponseError(f"Xero's answer has no {collection} list", call=self.last_call)
            yield from items
            pagination = data.get("pagination") if isinstance(data, dict) else None
            page_count = pagination.get("pageCount") if isinstance(pagination, dict) else None
            if len(items) < self.page_size or (isinstance(page_count, int) and page >= page_count):
                return
        raise BadResponseError(f"more than {self.max_pages} pages of {collection}", call=self.last_call)

    def invoices(self, *, invoice_numbers: Iterable[str] | None = None, ids: Iterable[str] | None = None,
                 where: str | None = None, statuses: Iterable[str] | None = None,
                 modified_since: datetime | None = None, unitdp: int = 4) -> Iterator[dict]:
        """GET /Invoices by InvoiceNumbers, IDs and/or a `where` filter (numbers/ids chunked)."""
        base: dict[str, str] = {"unitdp": str(unitdp)}
        if where:
            base["where"] = where
        if statuses:
            base["Statuses"] = ",".join(statuses)
        return self._filtered("Invoices", base, modified_since,
                              ("InvoiceNumbers", invoice_numbers), ("IDs", ids))

    def contacts(self, *, ids: Iterable[str] | None = None, contact_numbers: Iterable[str] | None = None,
                 where: str | None = None, include_archived: bool = True) -> Iterator[dict]:
        """GET /Contacts by IDs, by ContactNumber (as `where` filters, chunked) or by `where`."""
        base: dict[str, str] = {"includeArchived": "true"} if include_archived else {}
        if contact_numbers is not None:
            if where:
                raise ValueError("give contact_numbers or where, not both")
            for chunk in _chunks(contact_numbers, self.ids_per_request):
                clause = " OR ".join(f'ContactNumber=="{_where_literal(n)}"' for n in chunk)
                yield from self.paged("Contacts", {**base, "where": clause})
            return
        if where:
            base["where"] = where
        yield from self._filtered("Contacts", base, None, ("IDs", ids))

    def payments(self, *, where: str | None = None) -> Iterator[dict]:
        """GET /Payments, optionally filtered with `where` (e.g. `Invoice.InvoiceID==Guid("…")`)."""
        return self.paged("Payments", {"where": where} if where else None)

    def _filtered(self, collection: str, base: dict, modified_since, *lists) -> Iterator[dict]:
        chosen = [(name, values) for name, values in lists if values is not None]
        if not chosen:
            yield from self.paged(collection, base, modified_since=modified_since)
            return
        if len(chosen) > 1:
            raise ValueError(f"filter {collection} by one id list at a time")
        name, values = chosen[0]
        for chunk in _chunks(values, self.ids_per_request):
            yield from self.paged(collection, {**base, name: ",".join(chunk)}, modified_since=modified_since)

    def invoice(self, invoice_id: str, unitdp: int = 4) -> dict:
        """GET /Invoices/{id}: one invoice with its line items and payments (unit amounts to 4 dp)."""
        data = self.request("GET", f"Invoices/{quote(invoice_id)}", params={"unitdp": str(unitdp)}).data
        items = data.get("Invoices") or []
        if not items:
            raise NotFoundError(f"Invoice {invoice_id} not in Xero", call=self.last_call)
        return items[0]

    def accounts(self) -> list[dict]:
        """GET /Accounts (the chart of accounts, archived included)."""
        return list(self.request("GET", "Accounts").data.get("Accounts") or [])

    def tax_rates(self) -> list[dict]:
        """GET /TaxRates."""
        return list(self.request("GET", "TaxRates").data.get("TaxRates") or [])

    def tracking_categories(self, include_archived: bool = False) -> list[dict]:
        """GET /TrackingCategories with their options."""
        params = {"includeArchived": "true"} if include_archived else None
        data = self.request("GET", "TrackingCategories", params=params).data
        return list(data.get("TrackingCategories") or [])


def _where_literal(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return money_json.loads(response.content)
    except ValueError:
        return None


def _snippet(response: requests.Response, limit: int = 500) -> str:
    try:
        return response.text[:limit]
    except Exception:  # an undecodable body is shown as nothing rather than failing the error path
        return ""


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _auth_detail(body: Any, response: requests.Response) -> str:
    if isinstance(body, dict):
        for name in ("Detail", "detail", "Title", "title", "Message", "message"):
            if body.get(name):
                return str(body[name])
    return response.headers.get("WWW-Authenticate") or _snippet(response, 200) or str(response.status_code)


def _validation(body: Any, collection: str | None) -> tuple[list[str], list[ElementOutcome]]:
    """Messages and per-element outcomes of a 400 body (`ValidationException` with `Elements`)."""
    if not isinstance(body, dict):
        return [], []
    messages: list[str] = []
    elements: list[ElementOutcome] = []
    for element in body.get("Elements") or []:
        if not isinstance(element, dict):
            continue
        for item in element.get("ValidationErrors") or []:
            if isinstance(item, dict) and item.get("Message"):
                messages.append(str(item["Message"]))
        if collection:
            elements.append(outcome_of(collection, element))
    if not messages and body.get("Message"):
        messages.append(str(body["Message"]))
    return list(dict.fromkeys(messages)), elements


def _error_summary(status: int, body: Any) -> str:
    if isinstance(body, dict):
        return f"{status} {body.get('Type') or body.get('Title') or ''} {body.get('Message') or ''}".strip()
    return str(status)
