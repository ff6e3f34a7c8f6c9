# The two commands: `make demo` and `make test` (SPEC §4). Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint browser services-down clean bench chaos

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed; installing python3-venv"; apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $(STAMP)

## make demo: services, migrations, sandboxes, an admin login, then web + worker + clock. Ctrl-C stops all.
demo: $(STAMP)
	@scripts/demo.sh

## make test: the same setup, then the whole suite, browser tests included.
test: $(STAMP) browser
	@scripts/test.sh $(PYTEST_ARGS)

## Chromium for the browser tests (Debian's package; Playwright's own download does not work here).
browser:
	@scripts/browser.sh

## make bench: the SPEC §11 benchmarks at full size (one JSON object each; see bench/README.md).
bench: $(STAMP)
	@$(BIN)/python bench/backfill.py --invoices 10000 --patients 3000 --window $${BENCH_WINDOW:-10} || true
	@$(BIN)/python bench/cliniko_reads.py --invoices 10000 --patients 3000 || true
	@$(BIN)/python bench/engine.py --invoices 10000 --patients 3000 --workers 1,2 --profile --sample || true
	@$(BIN)/python bench/tenants.py --practices 200 --invoices 200 --workers 4 || true
	@$(BIN)/python bench/latency.py --poll-interval 5 --count 40 || true

## make chaos: SPEC §12 reliability at full size (2,000-invoice backfill, kills, faults, Redis flush,
## Postgres restart, token race).
chaos: $(STAMP)
	@CHAOS_SCALE=full scripts/test.sh tests/chaos tests/xero/test_token_processes.py -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

services-down:
	@scripts/services.sh down

clean: services-down
	rm -rf .run $(VENV) .pytest_cache
