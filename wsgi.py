"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi …`."""

import sys

from dotenv import load_dotenv

from webapp import create_app
from webapp.config import ConfigError

load_dotenv()

try:
    app = create_app()
except ConfigError as exc:
    # One clear line naming the variable, not a traceback.
    sys.stderr.write(f"Configuration error: {exc}\n")
    raise SystemExit(2) from None
