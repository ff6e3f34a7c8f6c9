"""GET endpoints for organisation settings: Accounts, TaxRates, TrackingCategories, Organisation."""

from sandbox.xero.accounting import query, render
from sandbox.xero.accounting.pipeline import accounting_route
from sandbox.xero.responses import envelope, json_response, not_found


def _ok(ctx, key: str, items: list):
    return json_response(envelope(key, items, ctx.sandbox.settings.app_name, ctx.now_ms()))


@accounting_route("/Accounts", ["GET"])
def get_accounts(ctx):
    """GET /Accounts with `where` and If-Modified-Since."""
    tree = query.where_tree()
    since = query.modified_since()
    with ctx.store.lock:
        accounts = list(ctx.org.data["accounts"])
        if since is not None:
            accounts = [a for a in accounts if (a.get("UpdatedMs") or 0) > since]
        accounts = query.apply_where(accounts, tree, lambda a: a)
        return _ok(ctx, "Accounts", [render.account(a) for a in accounts])


@accounting_route("/Accounts/<account_id>", ["GET"])
def get_account(ctx, account_id):
    """GET /Accounts/{AccountID}."""
    account = ctx.org.account(account_id=account_id)
    return _ok(ctx, "Accounts", [render.account(account)]) if account else not_found()


@accounting_route("/TaxRates", ["GET"])
def get_tax_rates(ctx):
    """GET /TaxRates with `where`."""
    tree = query.where_tree()
    rates = query.apply_where(list(ctx.org.data["tax_rates"]), tree, render.tax_rate)
    return _ok(ctx, "TaxRates", [render.tax_rate(t) for t in rates])


@accounting_route("/TrackingCategories", ["GET"])
def get_tracking_categories(ctx):
    """GET /TrackingCategories: active ones unless includeArchived=true."""
    include_archived = query.flag("includeArchived")
    tree = query.where_tree()
    categories = [c for c in ctx.org.data["tracking_categories"] if include_archived or c["Status"] == "ACTIVE"]
    categories = query.apply_where(categories, tree, lambda c: c)
    return _ok(ctx, "TrackingCategories", [render.tracking_category(c, include_archived) for c in categories])


@accounting_route("/TrackingCategories/<category_id>", ["GET"])
def get_tracking_category(ctx, category_id):
    """GET /TrackingCategories/{TrackingCategoryID}."""
    found = next(
        (c for c in ctx.org.data["tracking_categories"] if c["TrackingCategoryID"] == category_id.lower()),
        None,
    )
    return _ok(ctx, "TrackingCategories", [render.tracking_category(found)]) if found else not_found()


@accounting_route("/Organisation", ["GET"])
def get_organisation(ctx):
    """GET /Organisation (lock dates included)."""
    return _ok(ctx, "Organisations", [render.organisation(ctx.org)])
