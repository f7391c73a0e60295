# tradedesk: `make run` starts the product on embedded defaults, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

NPM_STAMP := frontend/node_modules/.installed
SPA_BUILD := frontend/dist/index.html
SPA_SOURCES := $(shell find frontend/src frontend/public -type f 2>/dev/null) frontend/index.html \
	frontend/vite.config.ts frontend/tsconfig.json

.PHONY: run test lint migrate bench mutate venv services clean spa spa-deps spa-test api-client test-packages

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: venv $(SPA_BUILD)
	$(PY) -m alembic upgrade head
	$(PY) -m tradedesk.devrun

# The SPA: npm packages from the lock file, a production build in frontend/dist.
spa-deps: $(NPM_STAMP)

$(NPM_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

spa: $(SPA_BUILD)

$(SPA_BUILD): $(NPM_STAMP) $(SPA_SOURCES)
	cd frontend && npm run -s build

# The SPA's typed client: the API's OpenAPI document, and the TypeScript types generated from it.
api-client: venv $(NPM_STAMP)
	$(PY) -m tradedesk.cli openapi > frontend/openapi.json
	cd frontend && npm run -s gen:api

spa-test: $(NPM_STAMP)
	cd frontend && npm run -s typecheck && npm run -s check:api && npm test -- --reporter=dot

# Debian's packages the tests drive: chromium for the browser run (the browser download of test tools does not
# work everywhere), pgbouncer for PostgreSQL behind a transaction-pooling proxy, nginx, the reverse proxy
# tests/topology runs with deploy/nginx's config, and faketime, to run a worker on a host whose clock is off.
test-packages:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -x /usr/sbin/pgbouncer || command -v pgbouncer >/dev/null 2>&1 || missing="$$missing pgbouncer"; \
	test -x /usr/sbin/nginx || command -v nginx >/dev/null 2>&1 || missing="$$missing nginx"; \
	command -v faketime >/dev/null 2>&1 || missing="$$missing faketime"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

migrate: venv
	$(PY) -m alembic upgrade head

lint: venv
	$(VENV)/bin/ruff check backend tests bench alembic
	$(VENV)/bin/ruff format --check backend tests bench alembic
	$(VENV)/bin/mypy

services:
	@bash .ci/services

test: venv services lint spa-test $(SPA_BUILD) test-packages
	$(VENV)/bin/pytest -q

bench: venv services
	$(PY) bench/auth_status.py
	$(PY) bench/trading.py
	$(PY) bench/agents.py
	$(PY) bench/load.py

# Sampled mutation testing of the critical modules (slow; not part of `make test`). Configs in mutation/.
mutate: venv services
	$(PY) -m pip install --quiet 'cosmic-ray>=8.7,<9'
	$(PY) mutation/run.py $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tradedesk.db* frontend/node_modules frontend/dist
