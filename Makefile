# The two commands of the README: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install install-test glpk lint bench sample clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# GLPK is a Debian package (glpsol); HiGHS comes from pip (highspy).
glpk:
	@command -v glpsol >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq glpk-utils; }

demo: install
	$(BIN)/stageroute plan --logs sample_logs/logs.parquet --catalog sample_logs/catalog.csv \
		--budget 0.002 --max-deployed 3 --as-of 2026-11-16T02:00:00Z

test: install-test glpk
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy

sample: install
	$(BIN)/python sample_logs/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
