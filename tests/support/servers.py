"""Run a WSGI app on a real 127.0.0.1 port in a background thread, for tests over real HTTP."""

import contextlib
import threading
from collections.abc import Iterator

from werkzeug.serving import make_server


@contextlib.contextmanager
def serve(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` threaded on host:port (0 = a free port); yield its base URL, stop on exit."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"wsgi-{server.port}", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
