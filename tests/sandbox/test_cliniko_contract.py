"""Contract: sandbox Cliniko's responses validate against Cliniko's published OpenAPI file.

Two layers: openapi-core (operation, documented status, content type, body) and, because openapi-core
0.19 casts response values to the schema's types before validating, a strict JSON-schema check of
the body exactly as sent (openapi-schema-validator's OAS 3.0 read validator with format checks).

The published file (OpenAPI 3.0.3, 2023) has three quirks that make a few fields impossible to
validate strictly; each is patched in memory below, nothing else is loosened, and
`test_strict_spec_fails_only_on_the_documented_quirks` proves that against the unpatched file:

1. NULLABLE_ENUM: properties marked `nullable: true` whose `enum` list lacks null
   (IndividualAppointment.cancellation_reason_description, AppointmentType.online_payments_mode,
   Invoice.status/status_description, Patient.reminder_type, …). OpenAPI 3.0 validators apply the enum
   to null, so a null value (an appointment that was never cancelled) fails. Patch: add null to the enum.
2. EMAIL_PATTERN: Patient.email / invoice_email carry the pattern `^[A-Z0-9…]+@[A-Z0-9.-]+\\.[A-Z]{2,63}$`,
   upper-case only (the Ruby original is case-insensitive), so every lower-case email fails. Patch: the
   same pattern with a-z added.
3. DECIMAL_QUANTITY: InvoiceItem.quantity is `integer` in the 2023 file, but Cliniko has since added
   decimal quantities (help article "Edit an invoice"; reference/cliniko.md §3). The emulator sends whole
   quantities as integers and decimal ones (e.g. 1.5 hours) as numbers. Patch: `number`.
"""

import copy
import json
import os
from pathlib import Path

import pytest
import requests
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.sandbox.cliniko_fixtures import TIMEOUT, control, running, session

openapi_core = pytest.importorskip("openapi_core")
from openapi_core import Config, OpenAPI  # noqa: E402
from openapi_core.datatypes import RequestParameters  # noqa: E402
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = Path(os.environ.get("CLINIKO_OPENAPI_SPEC") or ROOT / "../shared/cliniko/cliniko-openapi.json")
SPEC_HOST = "https://api.au1.cliniko.com"
INCLUDE_ALL = {"q[]": ["archived_at:*", "deleted_at:*"]}

LISTS = {
    "/settings": {},
    "/businesses": INCLUDE_ALL,
    "/practitioners": {},
    "/practitioners/inactive": {},
    "/patients": {"q[]": "archived_at:*"},
    "/invoices": INCLUDE_ALL,
    "/invoice_items": INCLUDE_ALL,
    "/billable_items": {"q[]": "archived_at:*"},
    "/products": {"q[]": "archived_at:*"},
    "/taxes": {},
    "/individual_appointments": INCLUDE_ALL,
    "/appointment_types": {"q[]": "archived_at:*"},
    "/concession_types": {},
    "/concession_prices": {},
}
SINGLES = [
    "businesses",
    "practitioners",
    "patients",
    "invoices",
    "invoice_items",
    "billable_items",
    "products",
    "taxes",
    "individual_appointments",
    "appointment_types",
    "concession_types",
    "concession_prices",
]


def _spec() -> dict:
    if not SPEC_PATH.is_file():
        pytest.skip(f"Cliniko OpenAPI file not found at {SPEC_PATH} (set CLINIKO_OPENAPI_SPEC to its path)")
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def _walk_schemas(node, visit):
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk_schemas(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk_schemas(value, visit)


def patch_quirks(spec: dict) -> dict:
    """The published spec with exactly the three documented quirks patched."""
    spec = copy.deepcopy(spec)

    def nullable_enum(node):  # quirk 1
        if node.get("nullable") and isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]

    def email_pattern(node):  # quirk 2
        if node.get("pattern", "").startswith("^[A-Z0-9!#$%&'*+/=?^_`{|}~.-]+@"):
            node["pattern"] = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,63}$"

    _walk_schemas(spec, nullable_enum)
    _walk_schemas(spec, email_pattern)
    spec["components"]["schemas"]["InvoiceItem"]["properties"]["quantity"]["type"] = "number"  # quirk 3
    return spec


class SpecRequest:
    """A GET as openapi-core sees it, placed on the spec's own server so paths match."""

    def __init__(self, path: str):
        self.host_url = SPEC_HOST
        self.path = "/v1" + path
        self.method = "get"
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(), header=Headers(), cookie=ImmutableMultiDict()
        )
        self.content_type = "application/json"
        self.body = None


class SpecResponse:
    """A requests response as openapi-core sees it."""

    def __init__(self, response: requests.Response):
        self.status_code = response.status_code
        self.content_type = response.headers.get("Content-Type", "")
        self.headers = Headers(dict(response.headers))
        self.data = response.content


def core_errors(api: OpenAPI, template: str, response: requests.Response) -> list[str]:
    """openapi-core's verdict: operation, documented status and content type, and the (cast) body."""
    try:
        api.validate_response(SpecRequest(template), SpecResponse(response))
    except Exception as exc:  # openapi-core raises one of several error classes; report them all
        return [f"{template}: {type(exc).__name__}: {str(exc)[:300]}"]
    return []


def strict_errors(spec: dict, template: str, body) -> list:
    """JSON-schema errors of a body against the operation's 200 schema, without openapi-core's casting.

    openapi-core 0.19 casts response data to the schema's types before validating (so 1.5 passes as an
    integer and "90.0" as a number); this second check validates the JSON exactly as sent.
    """
    pointer = "#/paths/" + template.replace("~", "~0").replace("/", "~1")
    pointer += "/get/responses/200/content/application~1json/schema"
    validator = OAS30ReadValidator({**spec, "$ref": pointer}, format_checker=oas30_format_checker)
    return list(validator.iter_errors(body))


@pytest.fixture(scope="module")
def spec():
    return _spec()


@pytest.fixture(scope="module")
def responses():
    """Every list (all pages of invoices and items), every single record, the nested lists; after activity."""
    with running(patients=60, invoices=260) as root:
        control(
            root,
            "activity",
            {"new_invoices": 5, "payments": 3, "edits": 3, "archives": 1, "deletes": 1, "reopens": 1},
        )
        s = session()
        out: list[tuple[str, requests.Response]] = []
        firsts: dict[str, dict] = {}
        for path, params in LISTS.items():
            url = f"{root}/v1{path}"
            response = s.get(url, params={**params, "per_page": 100}, timeout=TIMEOUT)
            while True:
                assert response.status_code == 200, response.text
                out.append((path, response))
                body = response.json()
                name = path.strip("/").split("/")[0]
                for record in body.get(name, []):
                    if not any(record.get(f) for f in ("archived_at", "deleted_at", "cancelled_at")):
                        firsts.setdefault(name, record)
                nxt = body.get("links", {}).get("next")
                if not nxt or path not in ("/invoices", "/invoice_items"):
                    break
                response = s.get(nxt, timeout=TIMEOUT)
        for name in SINGLES:
            record = firsts[name]
            out.append((f"/{name}/{{id}}", s.get(record["links"]["self"], timeout=TIMEOUT)))
        invoice, patient = firsts["invoices"], firsts["patients"]
        out.append(
            (
                "/invoices/{invoice_id}/invoice_items",
                s.get(invoice["invoice_items"]["links"]["self"], timeout=TIMEOUT),
            )
        )
        out.append(
            ("/patients/{patient_id}/invoices", s.get(patient["invoices"]["links"]["self"], timeout=TIMEOUT))
        )
        yield out


def test_every_endpoint_validates_against_the_spec_with_documented_quirks(spec, responses):
    patched = patch_quirks(spec)
    api = OpenAPI.from_dict(patched, config=Config(spec_validator_cls=None))
    failures = []
    for template, response in responses:
        assert response.status_code == 200, (template, response.text)
        failures += core_errors(api, template, response)
        for error in strict_errors(patched, template, response.json())[:3]:
            failures.append(f"{template} {list(error.absolute_path)}: {error.message[:200]}")
    assert not failures, "\n".join(failures)
    covered = {t for t, _ in responses}
    assert {"/invoices", "/invoice_items", "/settings", "/invoices/{id}"} <= covered


def test_strict_spec_fails_only_on_the_documented_quirks(spec, responses):
    seen = set()
    unexpected = []
    for template, response in responses:
        for error in strict_errors(spec, template, response.json()):
            field = next((p for p in reversed(error.absolute_path) if isinstance(p, str)), None)
            if error.validator == "enum" and error.instance is None:
                seen.add("NULLABLE_ENUM")
            elif error.validator == "pattern" and field in ("email", "invoice_email"):
                seen.add("EMAIL_PATTERN")
            elif error.validator == "type" and field == "quantity" and isinstance(error.instance, float):
                seen.add("DECIMAL_QUANTITY")
            else:
                unexpected.append(f"{template} {list(error.absolute_path)}: {error.message[:200]}")
    assert not unexpected, "\n".join(unexpected)
    assert seen == {"NULLABLE_ENUM", "EMAIL_PATTERN", "DECIMAL_QUANTITY"}, seen


def test_strict_check_catches_wrong_types(spec):
    """The strict layer is not fooled by values openapi-core would cast (guards the test itself)."""
    body = {
        "invoice_items": [
            {
                "id": 1,
                "quantity": 1,
                "total_including_tax": "90.0",
                "unit_price": 100.0,
                "created_at": "yesterday",
            }
        ],
        "total_entries": 1,
        "links": {},
    }
    bad = {
        (list(e.absolute_path)[-1], e.validator)
        for e in strict_errors(patch_quirks(spec), "/invoice_items", body)
    }
    assert bad == {
        ("id", "type"),
        ("total_including_tax", "type"),
        ("unit_price", "type"),
        ("created_at", "format"),
    }
