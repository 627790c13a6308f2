# knock-sources: `make run` serves the app, `make test` runs the suite.
# Everything is installed into .venv from pyproject.toml; nothing by hand.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
# The embedded default: SQLite in instance/, jobs in-process, one process so
# that nothing else contends for the SQLite file.
GUNICORN_ARGS ?= --workers 1 --threads 8

.PHONY: run test test-fast lint fmt api-check bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Webhook URLs shown by the API point at this server unless configured otherwise.
export KNOCK_SOURCES_PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)

# GET /metrics answers on this second listener only (see gunicorn.conf.py).
export KNOCK_SOURCES_METRICS_BIND ?= 127.0.0.1:9464

run: venv
	$(BIN)/flask init-db
	$(BIN)/gunicorn --config gunicorn.conf.py --bind $(HOST):$(PORT) $(GUNICORN_ARGS) wsgi:app

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# schemathesis against a live server, from its own /openapi.json; any finding fails.
api-check: venv
	$(BIN)/python .ci/api_check.py

# Everything but the tests that start real processes (workers, gunicorn, pip): for quick iterations.
test-fast: venv
	$(BIN)/python -m pytest -m "not system" $(PYTEST_ARGS)

# Format check, lint, and type check of the public plugin API (files listed in pyproject.toml).
lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Load comes from wrk (closed loop, Debian's package) and bench/loadgen.py (open loop).
bench: venv
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/floor.py
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/store.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
