"""A worker process for tests: build the app from the environment, wait for the go signal, ask for an
access token, print the outcome as one JSON line.

    python -m tests.support.token_worker CONNECTION_ID READY_FILE GO_FILE

READY_FILE is created once the app is built; GO_FILE (written by the test) holds the epoch time at
which every worker calls `webapp.xero.tokens.access_token` together. Bounded waits throughout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

WAIT_SECONDS = 30


def main(argv: list[str]) -> int:
    connection_id, ready_file, go_file = int(argv[0]), Path(argv[1]), Path(argv[2])
    from webapp import create_app
    from webapp.extensions import db
    from webapp.xero.tokens import access_token

    app = create_app()
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))  # connect before the start, as a running worker would be
        db.session.rollback()
        ready_file.write_text("ready")
        deadline = time.monotonic() + WAIT_SECONDS
        while not go_file.exists() or not go_file.read_text().strip():
            if time.monotonic() > deadline:
                print(json.dumps({"error": "no go signal"}), flush=True)
                return 3
            time.sleep(0.005)
        start_at = float(go_file.read_text())
        delay = start_at - time.time()
        if 0 < delay < WAIT_SECONDS:
            time.sleep(delay)
        started = time.time()
        try:
            token = access_token(connection_id)
        except Exception as exc:  # reported to the test
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "started": started}), flush=True)
            return 1
        finally:
            db.session.remove()
        print(json.dumps({"token": token, "started": started, "finished": time.time()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
