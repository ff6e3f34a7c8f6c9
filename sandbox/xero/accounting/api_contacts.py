"""Contacts endpoints: GET (where, IDs, paging), PUT create, POST create-or-update, POST /{id}."""

from flask import request

from sandbox.xero.accounting import batch, contacts, query, render
from sandbox.xero.accounting.pipeline import accounting_route
from sandbox.xero.responses import envelope, json_response, not_found


@accounting_route("/Contacts", ["GET"])
def get_contacts(ctx):
    """GET /Contacts."""
    ids = query.csv_values("IDs")
    include_archived = query.flag("includeArchived")
    since = query.modified_since()
    tree = query.where_tree()
    page, size = query.paging()
    search = (request.args.get("searchTerm") or "").strip().lower()
    with ctx.store.lock:
        records = list(ctx.org.contacts.values())
        if ids:
            wanted = set(ids)
            records = [c for c in records if c["ContactID"] in wanted]
        elif not include_archived and not tree:
            records = [c for c in records if c["ContactStatus"] == "ACTIVE"]
        if since is not None:
            records = [c for c in records if c["UpdatedMs"] > since]
        if search:
            records = [
                c
                for c in records
                if any(
                    search in (c.get(k) or "").lower()
                    for k in ("Name", "FirstName", "LastName", "EmailAddress", "ContactNumber")
                )
            ]
        records = query.apply_where(records, tree, query.contact_view)
        records, pagination = query.paginate(records, page, size)
        items = [render.contact(c) for c in records]
    extra = {"pagination": pagination} if pagination else None
    return json_response(envelope("Contacts", items, ctx.sandbox.settings.app_name, ctx.now_ms(), extra))


@accounting_route("/Contacts/<contact_id>", ["GET"])
def get_contact(ctx, contact_id):
    """GET /Contacts/{ContactID} (a ContactNumber works too, as in Xero)."""
    with ctx.store.lock:
        found = ctx.org.contacts.get(contact_id.lower()) or ctx.org.contact_by_number(contact_id)
        if found is None:
            return not_found()
        item = render.contact(found)
    return json_response(envelope("Contacts", [item], ctx.sandbox.settings.app_name, ctx.now_ms()))


@accounting_route("/Contacts", ["PUT"])
def put_contacts(ctx):
    """PUT /Contacts: create each element."""
    items = batch.elements(batch.read_body(), "Contacts")
    results = [contacts.process(ctx, raw, None) for raw in items]
    return batch.respond(ctx, "Contacts", results, batch.summarize_errors())


@accounting_route("/Contacts", ["POST"])
def post_contacts(ctx):
    """POST /Contacts: update the matching contact (ContactID, ContactNumber, Name) or create."""
    items = batch.elements(batch.read_body(), "Contacts")
    results = []
    for raw in items:
        existing, error = contacts.find_for_upsert(ctx, raw) if isinstance(raw, dict) else (None, None)
        if error:
            results.append(
                (
                    {
                        "StatusAttributeString": "ERROR",
                        "HasValidationErrors": True,
                        "ValidationErrors": [{"Message": error}],
                    },
                    [error],
                )
            )
            continue
        results.append(contacts.process(ctx, raw, existing))
    return batch.respond(ctx, "Contacts", results, batch.summarize_errors())


@accounting_route("/Contacts/<contact_id>", ["POST"])
def post_contact(ctx, contact_id):
    """POST /Contacts/{ContactID}: update one contact."""
    existing = ctx.org.contacts.get(contact_id.lower())
    if existing is None:
        return not_found()
    items = batch.elements(batch.read_body(), "Contacts")
    raw = items[0] if items else {}
    view, errors = contacts.process(ctx, raw, existing)
    return batch.respond_single(ctx, "Contacts", view, errors)
