"""The /_sandbox control endpoints: state, reset, seed, load, activity, faults, clock and rate limit."""

from datetime import UTC, datetime

from flask import Blueprint, jsonify, request

from . import activity, loader
from .clock import iso
from .context import sandbox
from .generator import generate
from .state import Account

bp = Blueprint("cliniko_control", __name__, url_prefix="/_sandbox")


class ControlError(ValueError):
    """A control request the emulator cannot carry out (answered with 400)."""


@bp.errorhandler(ControlError)
@bp.errorhandler(ValueError)
@bp.errorhandler(TypeError)
def bad_request(exc):
    """Bad control input."""
    return jsonify(error=str(exc)), 400


def _body() -> dict:
    data = request.get_json(silent=True) if request.get_data() else {}
    if data is None or not isinstance(data, dict):
        raise ControlError("expected a JSON object")
    return data


def _account(key: str | None) -> Account:
    state = sandbox().state
    account = state.account_for(key) if key else state.primary()
    if account is None:
        raise ControlError(f"no account for API key {key!r}; create one with POST /_sandbox/seed")
    return account


def _int(data: dict, name: str, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ControlError(f"{name} must be an integer")
    value = int(value)
    if value < 0:
        raise ControlError(f"{name} must not be negative")
    return value


def build_account(key: str, seed: int, patients: int, invoices: int) -> Account:
    """Generate an account for `key` anchored on the emulator clock."""
    sb = sandbox()
    return generate(
        seed=seed,
        patients=patients,
        invoices=invoices,
        now=sb.clock.now(),
        key=key,
        days=sb.config.get("days", 182),
    )


def summary(account: Account) -> dict:
    """An account's key, generation parameters and record counts."""
    return {"api_key": account.key, "params": account.params, "counts": account.counts()}


@bp.get("/state")
def state_view():
    """Counts per collection, calls per key, faults, clock; `?invoices=1` lists every invoice too."""
    sb = sandbox()
    state = sb.state
    with state.lock:
        account = _account(request.args.get("api_key"))
        body = {
            "now": iso(sb.clock.now()),
            "clock": sb.clock.to_json(),
            "api_key": account.key,
            "seed": account.seed,
            "params": account.params,
            "counts": account.counts(),
            "accounts": {a.key: a.params for a in state.accounts.values()},
            "calls": dict(state.calls),
            "rate_limited": dict(state.rate_limited),
            "rate_limit": {"calls_per_minute": sb.limiter.limit, "window_seconds": sb.limiter.window},
            "faults": sb.faults.to_json(),
        }
        if request.args.get("invoices") in ("1", "true", "yes"):
            body["invoices"] = [
                {
                    k: inv.get(k)
                    for k in (
                        "id",
                        "number",
                        "status",
                        "total_amount",
                        "issue_date",
                        "closed_at",
                        "updated_at",
                        "archived_at",
                        "deleted_at",
                    )
                }
                for inv in account.tables["invoices"].values()
            ]
    return jsonify(body)


@bp.post("/reset")
def reset():
    """Back to the start-up data (or no records with {"empty": true}); counters, faults, limits cleared."""
    data = _body()
    sb = sandbox()
    cfg = sb.config
    with sb.state.lock:
        if cfg.get("now") is not None:
            sb.clock.set(cfg["now"], frozen=cfg.get("frozen", False))
        else:
            sb.clock.set(datetime.now(UTC), frozen=False)
        sb.state.accounts.clear()
        if data.get("empty"):
            account = build_account(cfg["api_key"], cfg["seed"], 0, 0)
        else:
            account = build_account(cfg["api_key"], cfg["seed"], cfg["patients"], cfg["invoices"])
        sb.state.put_account(account, primary=True)
        sb.state.reset_counters()
        sb.faults.clear()
        sb.limiter.configure(limit=cfg["calls_per_minute"], window=cfg.get("rate_window_seconds", 60))
        sb.state.save()
        return jsonify(summary(account))


@bp.post("/seed")
def seed():
    """(Re)generate an account from {seed, patients, invoices}; `api_key` adds or replaces another account."""
    data = _body()
    sb = sandbox()
    with sb.state.lock:
        key = data.get("api_key") or sb.state.primary_key
        current = sb.state.account_for(key)
        params = current.params if current else {"seed": 0, "patients": 300, "invoices": 2000}
        account = build_account(
            key,
            _int(data, "seed", params["seed"]),
            _int(data, "patients", params["patients"]),
            _int(data, "invoices", params["invoices"]),
        )
        sb.state.put_account(account, primary=key == sb.state.primary_key)
        sb.state.save()
        return jsonify(summary(account))


@bp.post("/load")
def load():
    """Store given records: {"invoices": [...], "invoice_items": [...], …, "replace": false, "api_key": …}."""
    data = _body()
    sb = sandbox()
    with sb.state.lock:
        result = loader.load(_account(data.get("api_key")), data, sb.clock.now())
        sb.state.save()
    return jsonify(result)


@bp.post("/activity")
def simulate_activity():
    """Simulate clinic activity now: {new_invoices, payments, edits, archives, deletes, reopens, bookings,
    new_patient_bookings, arrivals, no_shows, cancellations} (counts), optional business_id and api_key."""
    data = _body()
    key = data.pop("api_key", None)
    business_id = data.pop("business_id", None)
    sb = sandbox()
    with sb.state.lock:
        result = activity.simulate(_account(key), sb.clock.now(), data, business_id=business_id)
        sb.state.save()
    return jsonify(result)


@bp.route("/faults", methods=["GET", "POST", "DELETE"])
def faults():
    """Read (GET), replace (POST, JSON settings) or clear (DELETE, or POST {}) the injected faults."""
    sb = sandbox()
    if request.method == "GET":
        return jsonify(sb.faults.to_json())
    if request.method == "DELETE":
        sb.faults.clear()
        return jsonify(sb.faults.to_json())
    return jsonify(sb.faults.configure(_body()))


@bp.route("/clock", methods=["GET", "POST"])
def clock():
    """Read or move the clock: {"now": ISO, "advance_seconds": N, "frozen": bool} (each optional)."""
    sb = sandbox()
    if request.method == "POST":
        data = _body()
        if data.get("now"):
            sb.clock.set(str(data["now"]), frozen=data.get("frozen"))
        elif "frozen" in data:
            sb.clock.freeze(bool(data["frozen"]))
        if data.get("advance_seconds"):
            sb.clock.advance(float(data["advance_seconds"]))
    return jsonify(sb.clock.to_json())


@bp.route("/rate_limit", methods=["GET", "POST"])
def rate_limit():
    """Read or change the per-key limit: {"calls_per_minute": N, "window_seconds": S}."""
    sb = sandbox()
    if request.method == "POST":
        data = _body()
        sb.limiter.configure(limit=data.get("calls_per_minute"), window=data.get("window_seconds"))
    return jsonify({"calls_per_minute": sb.limiter.limit, "window_seconds": sb.limiter.window})
