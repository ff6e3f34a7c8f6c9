"""Run a sandbox Flask app on a port until stopped (shared by both emulators' CLIs)."""

from collections.abc import Callable

import click
from werkzeug.serving import make_server


def run_until_stopped(app, host: str, port: int, banner: Callable[[str], list[str]],
                      on_stop: Callable[[], None] | None = None) -> None:
    """Serve `app` threaded; print `banner(base_url)` lines once listening; Ctrl-C stops it."""
    server = make_server(host, port, app, threaded=True)
    for line in banner(f"http://{host}:{server.port}"):
        click.echo(line)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if on_stop is not None:
            on_stop()
