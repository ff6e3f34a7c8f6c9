#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (installs it when root).
set -euo pipefail
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium from Debian for the browser tests…" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
else
  echo "Chromium is missing at $CHROMIUM; install Debian's 'chromium' package (browser tests will fail)." >&2
  exit 1
fi
