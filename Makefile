# Two commands (see README): `make demo` sets up and runs the demo study,
# `make test` sets up and runs the whole test suite.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: setup demo test test-quick clean

$(BIN)/jointseg: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/jointseg

demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES) --resources gpu=1

test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

test-quick: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf results data/prepared .snakemake logs benchmarks mlflow.db
