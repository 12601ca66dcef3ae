# Packrat: `make run` starts the server, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG := $(if $(wildcard etc/packrat.ini),etc/packrat.ini,etc/packrat.ini.example)

.PHONY: run test lint bench clean

$(BIN)/packrat: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

run: $(BIN)/packrat
	exec $(BIN)/packrat serve --config $(CONFIG)

test: $(BIN)/packrat
	$(BIN)/ruff check packrat tests bench
	$(BIN)/ruff format --check packrat tests bench
	$(BIN)/pytest

lint: $(BIN)/packrat
	$(BIN)/ruff check --fix packrat tests bench
	$(BIN)/ruff format packrat tests bench

bench: $(BIN)/packrat
	$(BIN)/python bench/multipart.py
	$(BIN)/python bench/policies.py

clean:
	rm -rf $(VENV) var build *.egg-info
