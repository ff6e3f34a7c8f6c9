"""Network failures over real sockets: never-sent vs sent-without-answer."""

import socket
import threading
import time

import pytest
import requests

from webapp.clients.errors import AmbiguousError, NotSentError
from webapp.clients.transport import send


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_shot_server(behaviour):
    """Accept one connection on 127.0.0.1 and run `behaviour(conn)` on it in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)

    def run():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            behaviour(conn)
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1]


def _read_request(conn):
    conn.settimeout(2)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_connection_refused_is_not_sent():
    with pytest.raises(NotSentError) as info:
        send(requests.Session(), "PUT", f"http://127.0.0.1:{_free_port()}/x", headers={}, timeout=(1, 1))
    assert info.value.call.sent is False and info.value.call.status is None


def test_dropped_after_request_is_ambiguous():
    port = _one_shot_server(lambda conn: _read_request(conn))  # read, then hang up without answering
    with pytest.raises(AmbiguousError) as info:
        send(requests.Session(), "PUT", f"http://127.0.0.1:{port}/x", headers={"Idempotency-Key": "k1"},
             body="{}", timeout=(1, 2))
    assert info.value.outcome_unknown and info.value.call.sent and info.value.call.idempotency_key == "k1"


def test_drop_in_the_middle_of_the_body_is_ambiguous():
    def half(conn):
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Id")

    port = _one_shot_server(half)
    with pytest.raises(AmbiguousError):
        send(requests.Session(), "PUT", f"http://127.0.0.1:{port}/x", headers={}, body="{}", timeout=(1, 2))


def test_read_timeout_is_ambiguous():
    port = _one_shot_server(lambda conn: (_read_request(conn), time.sleep(1.0)))
    started = time.monotonic()
    with pytest.raises(AmbiguousError) as info:
        send(requests.Session(), "GET", f"http://127.0.0.1:{port}/x", headers={}, timeout=(1, 0.3))
    assert "read timeout" in info.value.message and time.monotonic() - started < 2


def test_connect_timeout_is_not_sent():
    # A listener that never accepts, with its backlog full: the kernel drops further SYNs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        with pytest.raises(NotSentError) as info:
            send(requests.Session(), "PUT", f"http://127.0.0.1:{port}/x", headers={}, body="{}",
                 timeout=(0.3, 1))
        assert "connect timeout" in info.value.message
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
