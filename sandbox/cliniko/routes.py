"""The Cliniko API under /v1: lists, single records, nested lists, /settings and appointment writes."""

import time

from flask import Blueprint, Response, g, jsonify, request

from . import appointments
from .auth import ACCESS_DENIED, USER_AGENT_MESSAGE, basic_username, user_agent_ok
from .context import sandbox
from .faults import HTML_500
from .filters import FilterError, parse_filters, select
from .paging import envelope, page_params, parse_sort, sort_records
from .resources import RESOURCES, render

bp = Blueprint("cliniko_api", __name__, url_prefix="/v1")


def api_base() -> str:
    """The absolute /v1 base of this request's host (links follow whatever host was called)."""
    return request.host_url.rstrip("/") + "/v1"


def _text(body: str, status: int, **headers) -> Response:
    return Response(body, status=status, mimetype="text/plain", headers=headers)


@bp.before_request
def guard():
    """User-Agent, Basic auth, call counting, the per-key rate limit and injected faults, in that order."""
    if request.url_rule is None:
        return None
    sb = sandbox()
    if not user_agent_ok(request.headers.get("User-Agent")):
        return _text(USER_AGENT_MESSAGE, sb.config.get("user_agent_status", 403))
    account = sb.state.account_for(basic_username(request.headers.get("Authorization")))
    if account is None:
        return _text(ACCESS_DENIED, 401, **{"WWW-Authenticate": 'Basic realm="Application"'})
    g.account = account
    with sb.state.lock:
        sb.state.calls[account.key] += 1
    allowed, reset = sb.limiter.hit(account.key)
    if not allowed:
        with sb.state.lock:
            sb.state.rate_limited[account.key] += 1
        return _text("Retry later\n", 429, **{"X-RateLimit-Reset": str(reset)})
    fault, latency = sb.faults.decide(request.path)
    if latency:
        time.sleep(latency)
    if fault == "error":
        status = int(sb.faults.settings.error_status)
        return jsonify(message="Sandbox fault injected"), status
    if fault == "rate_limit":
        return _text("Retry later\n", 429, **{"X-RateLimit-Reset": str(int(time.time() + sb.limiter.window))})
    if fault == "html_500":
        return Response(HTML_500, status=500, mimetype="text/html")
    g.malformed_json = fault == "malformed_json"
    return None


@bp.after_request
def malform(response: Response) -> Response:
    """Cut a JSON body short when the malformed-JSON fault was drawn for this call."""
    if g.get("malformed_json") and response.is_json:
        data = response.get_data()
        response.set_data(data[: max(1, len(data) // 2)])
    return response


@bp.errorhandler(FilterError)
def bad_filter(exc: FilterError):
    """A `q[]` or `sort` the API cannot apply."""
    return jsonify(message=str(exc)), 400


@bp.errorhandler(appointments.ValidationFailed)
def validation_failed(exc: appointments.ValidationFailed):
    """A write Cliniko refuses: 422 with the spec's ValidationError body."""
    return jsonify(message="Validation Failed", errors=exc.errors), 422


def _not_found():
    return jsonify(message="Not found"), 404


def _shows_cancelled(name: str, filters) -> bool:
    """`archived_at:*` also finds cancelled appointments ("cancelled or archived records", Cliniko's docs)."""
    return name == "individual_appointments" and any(f.field == "archived_at" and f.op == "*" for f in filters)


def list_response(name: str, match=None, extra_shown: set[str] | None = None, envelope_name: str | None = None):
    """A paged, filtered, sorted list of one resource (optionally narrowed by `match`)."""
    resource = RESOURCES[name]
    args = request.args
    filters = parse_filters(args.getlist("q[]") + args.getlist("q"), resource.filters)
    keys = parse_sort(args.get("sort"), args.get("order"))
    page, per_page = page_params(args)
    shown = set(extra_shown or ())
    if _shows_cancelled(name, filters):
        shown.add("cancelled_at")
    base = api_base()
    state = sandbox().state
    with state.lock:
        rows = g.account.records(name)
        if match is not None:
            rows = [r for r in rows if match(r)]
        rows = select(rows, filters, resource.hidden_unless_filtered, shown)
        rows = sort_records(rows, keys, resource.filters)
        chunk = rows[(page - 1) * per_page : page * per_page]
        rendered = [render(resource, r, base) for r in chunk]
    return jsonify(envelope(envelope_name or name, rendered, len(rows), page, per_page, request.base_url, args))


def single_response(name: str, record_id: str):
    """One record; archived/deleted ones only when the request filters on that field (`archived_at:*`)."""
    resource = RESOURCES[name]
    filters = parse_filters(request.args.getlist("q[]") + request.args.getlist("q"), resource.single_filters)
    state = sandbox().state
    with state.lock:
        record = g.account.tables[name].get(record_id)
        shown = {"cancelled_at"} if _shows_cancelled(name, filters) else set()
        if record is None or not select([record], filters, resource.hidden_unless_filtered, shown):
            return _not_found()
        return jsonify(render(resource, record, api_base()))


@bp.get("/settings")
def settings():
    """The account settings (an object, not a list)."""
    with sandbox().state.lock:
        return jsonify(g.account.settings)


@bp.get("/practitioners")
def practitioners():
    """Active practitioners."""
    return list_response("practitioners", lambda r: r.get("active", True))


@bp.get("/practitioners/inactive")
def inactive_practitioners():
    """Practitioners no longer active."""
    return list_response("practitioners", lambda r: not r.get("active", True))


@bp.get("/businesses/<business_id>/practitioners")
def business_practitioners(business_id: str):
    """Active practitioners who work at a business."""
    return list_response(
        "practitioners", lambda r: r.get("active", True) and business_id in (r.get("_business_ids") or ())
    )


@bp.get("/invoices/<invoice_id>/invoice_items")
def invoice_items_of(invoice_id: str):
    """Items of one invoice (deprecated in Cliniko's 2025 docs, still linked from every invoice)."""
    return list_response("invoice_items", lambda r: r.get("invoice_id") == invoice_id)


def _invoices_by(field: str):
    def view(parent_id: str):
        return list_response("invoices", lambda r: r.get(field) == parent_id)

    view.__name__ = f"invoices_by_{field}"
    view.__doc__ = f"Invoices whose {field} is the given id."
    return view


for _path, _field in (
    ("patients/<parent_id>", "patient_id"),
    ("practitioners/<parent_id>", "practitioner_id"),
    ("appointments/<parent_id>", "appointment_id"),
):
    bp.add_url_rule(f"/{_path}/invoices", view_func=_invoices_by(_field), methods=["GET"])


@bp.get("/appointments/<record_id>")
def appointment(record_id: str):
    """An individual appointment at the legacy /appointments/{id} URL that invoices link to."""
    return single_response("individual_appointments", record_id)


def _make_views(name: str):
    def list_view():
        return list_response(name)

    def single_view(record_id: str):
        return single_response(name, record_id)

    list_view.__name__, single_view.__name__ = f"list_{name}", f"get_{name}"
    list_view.__doc__, single_view.__doc__ = f"List {name}.", f"One of {name} by id."
    return list_view, single_view


for _name in RESOURCES:
    _list_view, _single_view = _make_views(_name)
    if _name != "practitioners":
        bp.add_url_rule(f"/{_name}", view_func=_list_view, methods=["GET"])
    bp.add_url_rule(f"/{_name}/<record_id>", view_func=_single_view, methods=["GET"])


# -- individual appointment writes -----------------------------------------------------------------------
def _json_body():
    data = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(data, dict):
        return None
    return data


def _writable_appointment(record_id: str) -> dict | None:
    """An appointment that can be changed: stored, neither deleted nor archived (cancelled ones can)."""
    record = g.account.tables["individual_appointments"].get(record_id)
    if record is None or record.get("deleted_at") or record.get("archived_at"):
        return None
    return record


@bp.post("/individual_appointments")
def create_individual_appointment():
    """Book an appointment: 201 with it (and a Location header), or 422 with errors."""
    body = _json_body()
    if body is None:
        return jsonify(message="Invalid JSON body"), 400
    sb = sandbox()
    with sb.state.lock:
        appt = appointments.create(g.account, body, sb.clock.now())
        sb.state.save()
        out = render(RESOURCES["individual_appointments"], appt, api_base())
    return jsonify(out), 201, {"Location": out["links"]["self"]}


def _change_appointment(record_id: str, change) -> Response | None:
    """Apply `change(appointment, body, now)` to a live appointment under the lock; an error response
    (400 bad JSON, 404) or None when done (validation errors raise and answer 422)."""
    body = _json_body()
    if body is None:
        return jsonify(message="Invalid JSON body"), 400
    sb = sandbox()
    with sb.state.lock:
        appt = _writable_appointment(record_id)
        if appt is None:
            return _not_found()
        change(appt, body, sb.clock.now())
        sb.state.save()
    return None


@bp.patch("/individual_appointments/<record_id>")
def update_individual_appointment(record_id: str):
    """Change an appointment: 200 with it, 404, or 422 with errors."""
    failed = _change_appointment(record_id, lambda appt, body, now: appointments.update(g.account, appt, body, now))
    if failed is not None:
        return failed
    with sandbox().state.lock:
        return jsonify(render(RESOURCES["individual_appointments"], g.account.tables["individual_appointments"]
                              [record_id], api_base()))


@bp.patch("/individual_appointments/<record_id>/cancel")
def cancel_individual_appointment(record_id: str):
    """Cancel an appointment: 204, 404, or 422 with errors."""
    return _change_appointment(record_id, appointments.cancel) or Response(status=204)
