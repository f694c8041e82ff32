# The rater's developer commands. `make demo` and `make test` are the quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup install test test-unit lint demo bench broker-start broker-stop clean

# System packages the suite needs (Prometheus, ...): tools/system-packages.txt.
setup:
	tools/setup-system.sh

install: $(STAMP)

# Reinstall when the project's dependency files change; constraints.txt pins a
# reproducible set of versions.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,docker]'
	touch $(STAMP)

# The whole suite: unit, golden, property and Kafka integration tests. The suite
# starts its own Kafka broker unless KAFKA_BOOTSTRAP_SERVERS names one.
test: install
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m "not kafka"

lint: install
	$(BIN)/ruff check rater sinks tests bench tools
	$(BIN)/ruff format --check rater sinks tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: install
	$(BIN)/python -m rater demo

bench: install
	$(BIN)/python bench/run_all.py

broker-start: install
	$(BIN)/rater broker start

broker-stop: install
	$(BIN)/rater broker stop

clean:
	rm -rf $(VENV) .cache out demo-out .pytest_cache .mypy_cache .ruff_cache .hypothesis
