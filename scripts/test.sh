#!/usr/bin/env bash
# `make test`: services up, then the whole suite against the test database and Redis index.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/services.sh up)"
export SECRET_KEY="${SECRET_KEY:-test-only-secret}"
export CLINIKO_USER_AGENT="${CLINIKO_USER_AGENT:-Cliniko Xero Sync tests (tests@example.com)}"
export TOKEN_ENCRYPTION_KEYS="${TOKEN_ENCRYPTION_KEYS:-$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}"
# The app under test talks to the test database only.
export DATABASE_URL="$TEST_DATABASE_URL"
export REDIS_URL="$TEST_REDIS_URL"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then echo "pytest collected no tests" >&2; fi
exit "$status"
