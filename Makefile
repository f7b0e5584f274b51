# The two commands of the README: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install install-test glpk lint bench sample clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Stamps: reinstall only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

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

bench: install
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_plan.py
	$(BIN)/python benchmarks/bench_deploy.py
	$(BIN)/python benchmarks/bench_help.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
