# The course's two commands (see README):  make book   and   make test
# Both create the virtual environment .venv on first use and install everything into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Exact versions for set-up only (pyproject keeps user-friendly ranges, e.g. for Colab): the tested
# torch/torchvision pair (the registry's CUDA build runs on the CPU too; never mix it with a CPU-only
# torch wheel) and the tools whose output the tests compare byte for byte. See constraints.txt.
CONSTRAINTS := constraints.txt

.PHONY: setup book test lint clean colab test-colab

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(CONSTRAINTS) torch torchvision -e ".[dev]"
	$(BIN)/python tests/browser.py  # MathJax for the browser test, from the npm registry
	touch $@

## Build the book (HTML in _build/html); every chapter is executed, Sphinx warnings are errors.
book: setup
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going --builder html

## Run every test: package, notebooks (papermill), nbgrader grading end to end, book build, lint.
test: setup
	$(BIN)/python -m pytest

## Regenerate the Colab editions of the book's pages (book/colab/), after editing a chapter.
colab: setup
	$(BIN)/python book/_ext/colab_edition.py

## A Colab-like runtime: Python 3.12, the package's oldest declared versions (pyproject's floors),
## no nbgrader or Jupyter Book; every page's Colab edition and every solution run in it.
COLAB_PYTHON ?= python3.12
COLAB_VENV   ?= .venv-colab
COLAB_PINS   := torch==2.9.1 torchvision==0.24.1 numpy==1.26.4 matplotlib==3.8.4 tqdm==4.66.5
test-colab:
	test -x $(COLAB_VENV)/bin/python || $(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install -q $(COLAB_PINS) ipykernel papermill
	$(COLAB_VENV)/bin/python -m pip install -q --no-deps -e .
	$(COLAB_VENV)/bin/python tests/colab_run.py

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache
