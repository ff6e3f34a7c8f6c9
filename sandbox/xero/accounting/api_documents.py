"""Invoices and CreditNotes endpoints: GET (filters, paging), PUT create, POST upsert, POST /{id}."""

from sandbox.xero.accounting import batch, documents, query
from sandbox.xero.accounting.documents import CREDIT_NOTE, INVOICE
from sandbox.xero.accounting.pipeline import accounting_route
from sandbox.xero.responses import envelope, json_response, not_found


def _list(ctx, kind):
    ids = query.csv_values("IDs")
    numbers = query.csv_values("InvoiceNumbers") if kind is INVOICE else []
    contact_ids = query.csv_values("ContactIDs")
    statuses = [s.upper() for s in query.csv_values("Statuses")]
    mine = query.flag("createdByMyApp")
    summary_only = query.flag("summaryOnly")
    since = query.modified_since()
    tree = query.where_tree()
    page, size = query.paging()
    org = ctx.org
    with ctx.store.lock:
        records = list(kind.collection(org).values())
        if ids:
            wanted = set(ids)
            records = [r for r in records if r[kind.id_field] in wanted]
        if numbers:
            wanted = set(numbers)
            records = [r for r in records if (r.get(kind.number_field) or "").strip().lower() in wanted]
        if contact_ids:
            wanted = set(contact_ids)
            records = [r for r in records if r.get("ContactID") in wanted]
        if statuses:
            records = [r for r in records if r["Status"] in statuses]
        if mine:
            records = [r for r in records if r.get("CreatedByClient") == ctx.client_id]
        if since is not None:
            records = [r for r in records if r["UpdatedMs"] > since]
        records = query.apply_where(records, tree, lambda r: query.invoice_view(org, r))
        records, pagination = query.paginate(records, page, size)
        # Xero returns line items only on paged (or single) requests, and never with summaryOnly.
        with_lines = page is not None and not summary_only
        items = [kind.render(org, r, with_lines, ctx.unitdp) for r in records]
    extra = {"pagination": pagination} if pagination else None
    return json_response(envelope(kind.key, items, ctx.sandbox.settings.app_name, ctx.now_ms(), extra))


def _one(ctx, kind, key):
    with ctx.store.lock:
        found = ctx.org.find_invoice(key) if kind is INVOICE else ctx.org.find_credit_note(key)
        if found is None:
            return not_found()
        item = kind.render(ctx.org, found, True, ctx.unitdp)
    return json_response(envelope(kind.key, [item], ctx.sandbox.settings.app_name, ctx.now_ms()))


def _put(ctx, kind):
    items = batch.elements(batch.read_body(), kind.key)
    results = []
    for raw in items:
        if isinstance(raw, dict) and raw.get(kind.id_field):
            # PUT only creates; an element naming an existing id is an update attempt.
            error = (
                "The document with the supplied id was not found for this endpoint."
                if not kind.collection(ctx.org).get(str(raw[kind.id_field]).lower())
                else documents.NOT_VALID_FOR_CREATION
            )
            results.append(
                (
                    {
                        "StatusAttributeString": "ERROR",
                        "HasErrors": True,
                        "ValidationErrors": [{"Message": error}],
                    },
                    [error],
                )
            )
            continue
        results.append(documents.process(ctx, kind, raw, None))
    return batch.respond(ctx, kind.key, results, batch.summarize_errors())


def _post(ctx, kind):
    items = batch.elements(batch.read_body(), kind.key)
    results = []
    for raw in items:
        with ctx.store.lock:
            existing, error = documents.find_for_upsert(ctx, kind, raw)
            if error:
                results.append(
                    (
                        {
                            "StatusAttributeString": "ERROR",
                            "HasErrors": True,
                            "ValidationErrors": [{"Message": error}],
                        },
                        [error],
                    )
                )
                continue
            results.append(documents.process(ctx, kind, raw, existing))
    return batch.respond(ctx, kind.key, results, batch.summarize_errors())


def _post_one(ctx, kind, key):
    with ctx.store.lock:
        existing = ctx.org.find_invoice(key) if kind is INVOICE else ctx.org.find_credit_note(key)
        if existing is None:
            return not_found()
        items = batch.elements(batch.read_body(), kind.key)
        view, errors = documents.process(ctx, kind, items[0] if items else {}, existing)
    return batch.respond_single(ctx, kind.key, view, errors)


@accounting_route("/Invoices", ["GET"])
def get_invoices(ctx):
    """GET /Invoices: page, IDs, InvoiceNumbers, ContactIDs, Statuses, where, If-Modified-Since."""
    return _list(ctx, INVOICE)


@accounting_route("/Invoices/<invoice_key>", ["GET"])
def get_invoice(ctx, invoice_key):
    """GET /Invoices/{InvoiceID or InvoiceNumber}."""
    return _one(ctx, INVOICE, invoice_key)


@accounting_route("/Invoices", ["PUT"])
def put_invoices(ctx):
    """PUT /Invoices: create."""
    return _put(ctx, INVOICE)


@accounting_route("/Invoices", ["POST"])
def post_invoices(ctx):
    """POST /Invoices: update by InvoiceID/InvoiceNumber, else create."""
    return _post(ctx, INVOICE)


@accounting_route("/Invoices/<invoice_key>", ["POST"])
def post_invoice(ctx, invoice_key):
    """POST /Invoices/{InvoiceID}: update, approve, void or delete."""
    return _post_one(ctx, INVOICE, invoice_key)


@accounting_route("/CreditNotes", ["GET"])
def get_credit_notes(ctx):
    """GET /CreditNotes."""
    return _list(ctx, CREDIT_NOTE)


@accounting_route("/CreditNotes/<note_key>", ["GET"])
def get_credit_note(ctx, note_key):
    """GET /CreditNotes/{CreditNoteID or CreditNoteNumber}."""
    return _one(ctx, CREDIT_NOTE, note_key)


@accounting_route("/CreditNotes", ["PUT"])
def put_credit_notes(ctx):
    """PUT /CreditNotes: create."""
    return _put(ctx, CREDIT_NOTE)


@accounting_route("/CreditNotes", ["POST"])
def post_credit_notes(ctx):
    """POST /CreditNotes: update or create."""
    return _post(ctx, CREDIT_NOTE)


@accounting_route("/CreditNotes/<note_key>", ["POST"])
def post_credit_note(ctx, note_key):
    """POST /CreditNotes/{CreditNoteID}: update one."""
    return _post_one(ctx, CREDIT_NOTE, note_key)
