"""Payments endpoints: GET (where, paging), PUT batch create, POST single create, POST /{id} delete."""

from sandbox.xero.accounting import batch, payments, query, render
from sandbox.xero.accounting.pipeline import accounting_route
from sandbox.xero.responses import envelope, json_response, not_found


@accounting_route("/Payments", ["GET"])
def get_payments(ctx):
    """GET /Payments."""
    since = query.modified_since()
    tree = query.where_tree()
    page, size = query.paging()
    org = ctx.org
    with ctx.store.lock:
        records = list(org.payments.values())
        if since is not None:
            records = [p for p in records if p["UpdatedMs"] > since]
        records = query.apply_where(records, tree, lambda p: query.payment_view(org, p))
        records, pagination = query.paginate(records, page, size)
        items = [render.payment(org, p) for p in records]
    extra = {"pagination": pagination} if pagination else None
    return json_response(envelope("Payments", items, ctx.sandbox.settings.app_name, ctx.now_ms(), extra))


@accounting_route("/Payments/<payment_id>", ["GET"])
def get_payment(ctx, payment_id):
    """GET /Payments/{PaymentID}."""
    with ctx.store.lock:
        found = ctx.org.payments.get(payment_id.lower())
        if found is None:
            return not_found()
        item = render.payment(ctx.org, found)
    return json_response(envelope("Payments", [item], ctx.sandbox.settings.app_name, ctx.now_ms()))


@accounting_route("/Payments", ["PUT"])
def put_payments(ctx):
    """PUT /Payments: create many, with summarizeErrors."""
    items = batch.elements(batch.read_body(), "Payments")
    results = [payments.create(ctx, raw) for raw in items]
    return batch.respond(ctx, "Payments", results, batch.summarize_errors())


@accounting_route("/Payments", ["POST"])
def post_payment(ctx):
    """POST /Payments: create one payment (no summarizeErrors on this operation)."""
    items = batch.elements(batch.read_body(), "Payments")
    view, errors = payments.create(ctx, items[0] if items else {})
    return batch.respond_single(ctx, "Payments", view, errors)


@accounting_route("/Payments/<payment_id>", ["POST"])
def delete_payment(ctx, payment_id):
    """POST /Payments/{PaymentID} with {"Status": "DELETED"}."""
    found = ctx.org.payments.get(payment_id.lower())
    if found is None:
        return not_found()
    view, errors = payments.delete(ctx, found, batch.read_body())
    return batch.respond_single(ctx, "Payments", view, errors)
