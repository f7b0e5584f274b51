# The two commands of the README: `make demo` and `make test`. Both work on a fresh machine.
# `make` alone (or `make help`) lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Every install is pinned to the versions the tests run against (ranges stay in pyproject.toml).
PIN := -c constraints.txt --build-constraint constraints.txt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help demo test install install-test glpk java lint bench sample lock clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/.installed ## install stageroute into .venv (pinned by constraints.txt)

install-test: $(VENV)/.installed-test ## install stageroute and the test tools into .venv

# Stamps: reinstall when the dependencies (pyproject.toml) or their pins (constraints.txt) change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt pip
	$(PIP) install -q $(PIN) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt pip
	$(PIP) install -q $(PIN) -e '.[test]'
	touch $@ $(VENV)/.installed

# GLPK is a Debian package (glpsol); HiGHS comes from pip (highspy).
glpk: ## install GLPK's glpsol with apt-get when it is missing
	@command -v glpsol >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq glpk-utils; }

# Spark (stats --engine spark, tested in local mode) runs on Java 17 or newer.
java: ## install Java 17 (for the Spark engine's tests) with apt-get when java is missing
	@command -v java >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }

demo: install ## install, then plan the next stage on the shipped sample log
	$(BIN)/stageroute plan --logs sample_logs/logs.parquet --catalog sample_logs/catalog.csv \
		--budget 0.002 --max-deployed 3 --as-of 2026-11-16T02:00:00Z
	@echo
	@echo "Run it yourself: $(BIN)/stageroute --help (or: source $(BIN)/activate; stageroute --help)"

test: install-test glpk java ## install the test dependencies (and GLPK, Java), run the whole test suite
	$(BIN)/python -m pytest -q

lint: install-test ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

sample: install ## regenerate the committed sample log (seeded, byte-identical)
	$(BIN)/python sample_logs/generate.py

bench: install ## run every benchmark of the README's "Performance" section
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_plan.py
	$(BIN)/python benchmarks/bench_deploy.py
	$(BIN)/python benchmarks/bench_help.py
	$(BIN)/python benchmarks/bench_offpolicy.py

# The newest releases within pyproject.toml's ranges, resolved in a scratch venv.
lock: ## re-resolve constraints.txt to the newest releases pyproject.toml allows
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install -q --upgrade pip setuptools
	$(VENV)-lock/bin/python -m pip install -q -e '.[test]'
	{ grep '^#' constraints.txt; $(VENV)-lock/bin/python -m pip freeze --all --exclude-editable \
		| grep -v -i '^wheel=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(VENV)-lock
	@echo "constraints.txt updated: run make test, then commit it"

clean: ## remove .venv and the tool caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
