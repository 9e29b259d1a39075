# Two commands: `make demo` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
DEMO := .demo

.PHONY: all setup test lint typecheck unit demo bench tables requirements requirements-image clean

all: test

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -n 2 --dist loadscope -q

test: lint typecheck unit

demo: setup
	bash tools/demo.sh

bench: setup
	$(BIN)/python benchmarks/bench_deid.py

tables: setup
	$(BIN)/python tools/generate_deid_tables.py

requirements: | $(BIN)/uv
	{ printf '%s\n' '# Pinned runtime, test and benchmark dependencies (name==version only; no index URLs).' \
	    '# Regenerate: make requirements (resolves the top-level list in requirements.in).'; \
	  $(BIN)/uv pip compile --quiet --no-header --no-annotate --python-version 3.11.7 requirements.in; \
	} > requirements.txt.tmp && mv requirements.txt.tmp requirements.txt
	$(MAKE) requirements-image

# The image's pins only, from requirements.txt as it stands (no upgrade of the tested set).
requirements-image: | $(BIN)/uv
	{ printf '%s\n' '# Pinned dependencies of the container image only (name==version only; no index URLs).' \
	    '# Regenerate: make requirements (requirements-image.in, constrained to the pins of requirements.txt).'; \
	  $(BIN)/uv pip compile --quiet --no-header --no-annotate --python-version 3.11.7 \
	    requirements-image.in -c requirements.txt; \
	} > requirements-image.txt.tmp && mv requirements-image.txt.tmp requirements-image.txt

clean:
	rm -rf $(VENV) $(DEMO) .mypy_cache .ruff_cache .pytest_cache
