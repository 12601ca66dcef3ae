# Packrat's make targets; `make` alone (or `make help`) lists them.
# Each target installs what it needs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench clean

help: ## this list
	@echo "make TARGET, where TARGET is one of:"
	@awk -F':.*## ' '/^[a-z]+:.*## / { printf "  %-7s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo "The packrat command is then .venv/bin/packrat (source .venv/bin/activate puts it on PATH)."

$(VENV)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# etc/packrat.ini when present, else the shipped example; $PACKRAT_CONFIG wins over both.
CONFIG := $(if $(wildcard etc/packrat.ini),etc/packrat.ini,etc/packrat.ini.example)

venv: $(VENV)/.installed-run ## make .venv with Packrat installed (editable): .venv/bin/packrat

run: $(VENV)/.installed-run ## serve on http://127.0.0.1:5050 (etc/packrat.ini, else the example); Ctrl-C stops
	exec $(BIN)/packrat serve $(if $(PACKRAT_CONFIG),,--config $(CONFIG))

test: $(VENV)/.installed-test ## ruff, then the whole suite against real processes (6-9 min on 2 cores)
	$(BIN)/ruff check packrat tests bench
	$(BIN)/ruff format --check packrat tests bench
	$(BIN)/pytest

lint: $(VENV)/.installed-test ## fix what ruff can and format the code
	$(BIN)/ruff check --fix packrat tests bench
	$(BIN)/ruff format packrat tests bench

bench: $(VENV)/.installed-test ## the benchmarks (docs/benchmarks.md), against nginx and a naive server
	$(BIN)/python bench/multipart.py
	$(BIN)/python bench/rebuild.py --objects 200000
	$(BIN)/python bench/coordinator.py
	$(BIN)/python bench/policies.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/http.py
	$(BIN)/python bench/http.py --pin
	$(BIN)/python bench/instructions.py
	$(BIN)/python bench/objectstore.py
	$(BIN)/python bench/action_results.py

clean: ## remove .venv, build files and var/ (the default cache root: its objects too)
	rm -rf $(VENV) var build *.egg-info
