# Two commands: `make demo` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
DEMO := .demo

.PHONY: all setup test lint typecheck unit demo bench tables requirements clean

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
	$(BIN)/uv pip compile --quiet --no-header --no-annotate --python-version 3.11.7 requirements.in -o requirements.txt

clean:
	rm -rf $(VENV) $(DEMO) .mypy_cache .ruff_cache .pytest_cache
