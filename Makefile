# The course's two commands (see README):  make book   and   make test
# Both create the virtual environment .venv on first use and install everything into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Exact versions for set-up only (pyproject keeps user-friendly ranges, e.g. for Colab): the tested
# torch/torchvision pair (the registry's CUDA build runs on the CPU too; never mix it with a CPU-only
# torch wheel) and the tools whose output the tests compare byte for byte. See constraints.txt.
CONSTRAINTS := constraints.txt

.PHONY: setup book test lint clean colab

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

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache
