# Self-documenting: `make help`. Every target installs what it needs first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2

.PHONY: help run test lint typecheck migrate bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

run: $(STAMP) ## serve on http://127.0.0.1:8000 (SQLite, in-process jobs, emulators, demo key printed)
	$(BIN)/gateway serve

test: $(STAMP) ## run the test suite (SQLite; set DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy
	$(BIN)/mypy

migrate: $(STAMP) ## alembic upgrade head on DATABASE_URL
	$(BIN)/gateway db upgrade

bench: $(STAMP) ## create-order benchmark against a floor app (needs PostgreSQL)
	$(BIN)/python bench/create_order.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
