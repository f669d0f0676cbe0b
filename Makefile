# Two commands: `make run` (the cockpit, paper mode) and `make test` (lint, types, tests).
# Both create or refresh the local virtualenv .venv on first use; nothing else to install.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kobe-tui

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict engine

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/router.py
	$(BIN)/python bench/wallets.py
	$(BIN)/python bench/runtime.py
	$(BIN)/python bench/cockpit.py
	$(BIN)/python bench/rpc_reply.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
