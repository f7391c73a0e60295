# tradedesk: `make run` starts the product on embedded defaults, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate bench mutate venv services clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: venv
	$(PY) -m alembic upgrade head
	$(PY) -m tradedesk.devrun

migrate: venv
	$(PY) -m alembic upgrade head

lint: venv
	$(VENV)/bin/ruff check backend tests bench alembic
	$(VENV)/bin/ruff format --check backend tests bench alembic
	$(VENV)/bin/mypy

services:
	@bash .ci/services

test: venv services lint
	$(VENV)/bin/pytest -q

bench: venv services
	$(PY) bench/auth_status.py
	$(PY) bench/trading.py
	$(PY) bench/agents.py

# Sampled mutation testing of the critical modules (slow; not part of `make test`). Configs in mutation/.
mutate: venv services
	$(PY) -m pip install --quiet 'cosmic-ray>=8.7,<9'
	$(PY) mutation/run.py $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tradedesk.db*
