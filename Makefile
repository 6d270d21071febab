# Two commands on a fresh machine with only Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install install-test run test lint bench bench-quick clean dev-cert

# Idempotent: re-installs only when pyproject.toml changed since the last install.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.install-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.install-stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@ $(VENV)/.install-stamp

install: $(VENV)/.install-stamp
	@echo "rotator is $(CURDIR)/$(BIN)/rotator  (or run: source $(BIN)/activate, then rotator)"

install-test: $(VENV)/.install-stamp-test

run: install
	$(BIN)/rotator run

# A self-signed CA and a server certificate for localhost in deploy/tls (docs/https.md):
# `make dev-cert DEV_CERT_ARGS="--name myhost.lan --force"` adds names or replaces them.
dev-cert: install
	$(BIN)/python -m rotator.devcert deploy/tls $(DEV_CERT_ARGS)

# One worker process per core, at most 4, each with its own Valkey servers; a file's tests
# stay in one worker (their module fixtures start once). One process: `pytest -p no:xdist`.
test: install-test
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

lint: install-test
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick

clean:
	rm -rf $(VENV) var .pytest_cache
