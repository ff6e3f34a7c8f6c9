#!/usr/bin/env bash
# `make demo`: services, migrations, sandbox Xero and Cliniko, an admin login, then web + worker + clock.
# Ctrl-C stops everything it started (honcho stops its processes; the trap stops throwaway services).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
mkdir -p .run

eval "$(scripts/services.sh up)"
trap 'scripts/services.sh down' EXIT

WEB_PORT="${PORT:-5000}"
XERO_PORT="${XERO_SANDBOX_PORT:-5101}"
CLINIKO_PORT="${CLINIKO_SANDBOX_PORT:-5102}"
HOST="${DEMO_HOST:-127.0.0.1}"

# Secrets and the admin password survive restarts of the demo.
if [ ! -f .run/demo.env ]; then
  {
    echo "SECRET_KEY=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    echo "TOKEN_ENCRYPTION_KEYS=$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    echo "DEMO_ADMIN_PASSWORD=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')"
  } > .run/demo.env
  chmod 600 .run/demo.env
fi
set -a
# shellcheck disable=SC1091
. .run/demo.env
CLINIKO_USER_AGENT="${CLINIKO_USER_AGENT:-Cliniko Xero Sync demo (demo@example.com)}"
SESSION_COOKIE_SECURE=0
XERO_CLIENT_ID=sandbox-client
XERO_CLIENT_SECRET=sandbox-secret
XERO_AUTHORIZE_URL="http://$HOST:$XERO_PORT/identity/connect/authorize"
XERO_TOKEN_URL="http://$HOST:$XERO_PORT/connect/token"
XERO_REVOKE_URL="http://$HOST:$XERO_PORT/connect/revocation"
XERO_CONNECTIONS_URL="http://$HOST:$XERO_PORT/connections"
XERO_API_URL="http://$HOST:$XERO_PORT/api.xro/2.0"
XERO_REDIRECT_URI="http://$HOST:$WEB_PORT/xero/callback"
CLINIKO_API_URL="http://$HOST:$CLINIKO_PORT/v1"
PORT="$WEB_PORT"
WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"
set +a

FLASK=".venv/bin/flask --app wsgi"
$FLASK db upgrade
ADMIN_EMAIL="${DEMO_ADMIN_EMAIL:-admin@example.com}"
$FLASK users create "$ADMIN_EMAIL" --role admin --password "$DEMO_ADMIN_PASSWORD" >/dev/null 2>&1 || true
$FLASK practices create --name "Demo Clinic" --slug demo-clinic --cliniko-api-key sandbox-key-au1 >/dev/null 2>&1 || true

cat > .run/Procfile.demo <<PROCS
web: $ROOT/.venv/bin/gunicorn wsgi:app --bind $HOST:$WEB_PORT --workers $WEB_CONCURRENCY --access-logfile -
worker: $ROOT/.venv/bin/python -u -m jobs.worker
clock: $ROOT/.venv/bin/python -u -m jobs.clock
xero: $ROOT/.venv/bin/python -u -m sandbox.xero --host $HOST --port $XERO_PORT --data $ROOT/.run/xero-sandbox.json
cliniko: $ROOT/.venv/bin/python -u -m sandbox.cliniko --host $HOST --port $CLINIKO_PORT --data $ROOT/.run/cliniko-sandbox.json
setup: $ROOT/scripts/demo_setup.sh http://$HOST:$XERO_PORT http://$HOST:$CLINIKO_PORT demo-clinic
PROCS

cat <<MSG

  Cliniko → Xero Sync demo
  ------------------------
  Open      http://$HOST:$WEB_PORT/
  Sign in   $ADMIN_EMAIL / $DEMO_ADMIN_PASSWORD
  Sandbox   Xero    http://$HOST:$XERO_PORT  (its consent page signs in as demo@example.com / sandbox)
            Cliniko http://$HOST:$CLINIKO_PORT/v1  (API key sandbox-key-au1)
  Then      Practices → Demo Clinic → Test Cliniko connection → Connect to Xero → choose the
            default accounts → Mappings (map GST → OUTPUT) → Turn sync on → Backfill from a date.
  Health    http://$HOST:$WEB_PORT/healthz
  Stop      Ctrl-C

MSG
.venv/bin/honcho -d "$ROOT" -f .run/Procfile.demo start
