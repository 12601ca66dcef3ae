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

# etc/packrat.ini when present (or $PACKRAT_CONFIG), else built-in defaults.
run: $(VENV)/.installed-run
	exec $(BIN)/packrat serve

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
	$(BIN)/python bench/http.py
	$(BIN)/python bench/http.py --pin

clean:
	rm -rf $(VENV) var build *.egg-info
