"""Helpers for the sandbox Cliniko tests: start an emulator over real HTTP and call it like a client."""

import contextlib
from collections.abc import Iterator

import requests

from sandbox.cliniko.app import create_app
from tests.support.servers import serve

KEY = "sandbox-key-au1"
USER_AGENT = "Cliniko Xero Sync tests (dev@example.com)"
NOW = "2025-06-01T00:00:00Z"
TIMEOUT = 10


def session(key: str | None = KEY, user_agent: str | None = USER_AGENT) -> requests.Session:
    """A requests session authenticated the Cliniko way (key as Basic username, blank password)."""
    s = requests.Session()
    if key is not None:
        s.auth = (key, "")
    s.headers["Accept"] = "application/json"
    if user_agent is not None:
        s.headers["User-Agent"] = user_agent
    else:
        s.headers.pop("User-Agent", None)
    return s


@contextlib.contextmanager
def running(**options) -> Iterator[str]:
    """Serve a fresh emulator (clock at NOW unless given); yields its root URL (without /v1)."""
    options.setdefault("now", NOW)
    with serve(create_app(**options)) as root:
        yield root


def get(s: requests.Session, url: str, **params) -> requests.Response:
    """GET with a timeout."""
    return s.get(url, params=params or None, timeout=TIMEOUT)


def walk(s: requests.Session, url: str, **params) -> tuple[list[dict], int]:
    """Follow `links.next` from the first page; returns every record and the number of calls."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    records, calls = [], 0
    response = s.get(url, params=params, timeout=TIMEOUT)
    while True:
        calls += 1
        assert response.status_code == 200, response.text
        body = response.json()
        records.extend(body[name])
        nxt = body["links"].get("next")
        if not nxt:
            return records, calls
        response = s.get(nxt, timeout=TIMEOUT)


def control(root: str, path: str, body: dict | None = None, method: str = "post") -> dict:
    """Call a /_sandbox control endpoint and return its JSON (asserting 200)."""
    response = requests.request(method, f"{root}/_sandbox/{path}", json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def link_id(relation: dict) -> str:
    """The id at the end of a link-only relation."""
    return relation["links"]["self"].rstrip("/").rsplit("/", 1)[-1]
