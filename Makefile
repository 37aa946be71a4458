# Two commands (see README): `make demo` sets up and runs the demo study,
# `make test` sets up and runs the whole test suite.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: setup demo lint test test-quick clean

$(BIN)/jointseg: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The offline page template of `dvc plots show` (.dvc/config: plots.html_template),
# with vega, vega-lite and vega-embed inlined from the pinned package.
.dvc/plots_page.html: $(BIN)/jointseg
	$(BIN)/python -m jointseg dvc-template --out $@

setup: $(BIN)/jointseg .dvc/plots_page.html

demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES) --resources gpu=1

# Lint and format checks (CI fails on any finding): ruff on the Python code,
# snakefmt and Snakemake's own linter on the workflow.
lint: setup
	$(BIN)/ruff format --check pipeline_src tests bench
	$(BIN)/ruff check pipeline_src tests bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1 > .lint.log 2>&1 || (cat .lint.log; exit 1)
	@grep -q "Congratulations, your workflow is in a good condition" .lint.log || (cat .lint.log; exit 1)
	@rm -f .lint.log

test: setup lint
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

test-quick: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf results data/prepared .snakemake logs benchmarks mlflow.db
