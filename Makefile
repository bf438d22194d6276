# Two entry points: `make run` (the demo on embedded defaults) and `make test`.
# Both create .venv from pyproject.toml on first use and refresh it when
# pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench clean

$(BIN)/catalog-refresher: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/catalog-refresher
	$(BIN)/catalog-refresher demo

test: lint typecheck unit

lint: $(BIN)/catalog-refresher
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(BIN)/catalog-refresher
	$(BIN)/mypy

unit: $(BIN)/catalog-refresher
	$(BIN)/pytest

bench: $(BIN)/catalog-refresher
	$(BIN)/python bench/refresh_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
