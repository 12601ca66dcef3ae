# Packrat: `make run` starts the server, `make test` runs the whole suite,
# `make bench` the benchmarks. Each target installs what it needs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

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

run: $(VENV)/.installed-run
	exec $(BIN)/packrat serve $(if $(PACKRAT_CONFIG),,--config $(CONFIG))

test: $(VENV)/.installed-test
	$(BIN)/ruff check packrat tests bench
	$(BIN)/ruff format --check packrat tests bench
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check --fix packrat tests bench
	$(BIN)/ruff format packrat tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python bench/multipart.py
	$(BIN)/python bench/rebuild.py --objects 200000
	$(BIN)/python bench/coordinator.py
	$(BIN)/python bench/policies.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/http.py
	$(BIN)/python bench/http.py --pin

clean:
	rm -rf $(VENV) var build *.egg-info
