# Two entry points: `make run` (the service on examples/demo.json, reading the simulated
# external systems over HTTP) and `make test`. Both create .venv from pyproject.toml on
# first use and refresh it when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench bench-refresh bench-incremental clean

$(BIN)/catalog-refresher: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The simulator in the background, the service in the foreground. Ctrl-C reaches the
# service, which drains its runs and exits; the simulator ignores it (started in the
# background, SIGINT arrives ignored) and keeps answering until then; the EXIT trap stops
# it with SIGTERM whichever way the recipe ends, so no simulator is left behind.
SIMULATOR_PORT := 8100
run: $(BIN)/catalog-refresher
	@$(BIN)/catalog-refresher simulate --port $(SIMULATOR_PORT) & simulator=$$!; \
	trap 'kill $$simulator 2>/dev/null; wait $$simulator' EXIT; \
	trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(BIN)/python -c "$$WAIT_FOR_SIMULATOR" $(SIMULATOR_PORT) || exit 1; \
	$(BIN)/catalog-refresher run --config examples/demo.json

# Until the simulator answers on 127.0.0.1:<port> (at most 20 s), so that the service's
# first requests find it. Something else holding the port fails at once: the simulator
# cannot have it then (its own message says so).
define WAIT_FOR_SIMULATOR
import sys, time, urllib.error, urllib.request
url, deadline = f"http://127.0.0.1:{sys.argv[1]}/", time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if answer.headers.get("Server", "").startswith("catalog-refresher-simulator"):
                sys.exit(0)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):  # not listening yet
            time.sleep(0.1)
            continue
    except OSError:
        pass
    sys.exit(f"make run: port {sys.argv[1]} is taken by something that is not the simulator")
sys.exit(f"make run: no simulator answers on {url}")
endef
export WAIT_FOR_SIMULATOR

test: lint typecheck unit

lint: $(BIN)/catalog-refresher
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(BIN)/catalog-refresher
	$(BIN)/mypy

unit: $(BIN)/catalog-refresher
	$(BIN)/pytest

# Issue 11's table, every row in one run (bench/issue11_bench.py, about 13 min at a load of 3
# on 2 CPUs, of which dlt 4-5: each dlt phase is cut after 180 s). Its dlt rows and chart
# need the bench extra, installed into .venv first: never a dependency of the service.
# bench-refresh: the step-by-step refresh benchmark (bench/refresh_bench.py, 7-9 min).
$(VENV)/.bench-extra: $(BIN)/catalog-refresher
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench-extra
	$(BIN)/python bench/issue11_bench.py

bench-refresh: $(BIN)/catalog-refresher
	$(BIN)/python bench/refresh_bench.py

bench-incremental: $(BIN)/catalog-refresher
	$(BIN)/python bench/incremental_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
