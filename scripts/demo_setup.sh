#!/usr/bin/env bash
# Demo set-up run beside the other processes: waits for the sandboxes, then stages the demo's
# deliberate problems (a Xero lock date that catches the oldest invoices, a billable item mapped to
# an archived account) and maps the Cliniko taxes, then idles (honcho stops all if one exits).
set -uo pipefail
XERO="$1"; CLINIKO="$2"; SLUG="$3"
FLASK=".venv/bin/flask --app wsgi"
for _ in $(seq 120); do
  curl -sf "$XERO/_sandbox/state?summary=1" >/dev/null && curl -sf "$CLINIKO/_sandbox/state" >/dev/null && break
  sleep 0.5
done
oldest=$(curl -sf "$CLINIKO/_sandbox/state?invoices=1" | .venv/bin/python -c \
  'import json,sys; d=json.load(sys.stdin); print(min(i["issue_date"] for i in d["invoices"]))')
lock=$(.venv/bin/python -c "import datetime,sys; print(datetime.date.fromisoformat('$oldest') + datetime.timedelta(days=3))")
curl -sf -X POST -H 'Content-Type: application/json' -d "{\"period_lock_date\": \"$lock\"}" \
  "$XERO/_sandbox/lock-dates" >/dev/null && echo "demo: Xero period lock date set to $lock (invoices before it will fail)"
$FLASK practices map "$SLUG" tax "GST" --tax-type OUTPUT
$FLASK practices map "$SLUG" tax "GST Free" --tax-type EXEMPTOUTPUT
$FLASK practices map "$SLUG" billable_item "Report Writing (per hour)" --account 250 \
  && echo "demo: 'Report Writing' is mapped to archived account 250 (its invoices fail until re-mapped)"
exec sleep infinity
