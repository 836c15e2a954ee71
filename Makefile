# The course's two commands (see README):  make book   and   make test
# Both create the virtual environment .venv on first use and install everything into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Exact torch/torchvision pair for set-up only (pyproject keeps user-friendly ranges, e.g. for Colab).
# The registry's CUDA build runs on the CPU too; never mix it with a CPU-only torch wheel.
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: setup book test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_PIN) -e ".[dev]"
	touch $@

## Build the book (HTML in _build/html); every chapter is executed, Sphinx warnings are errors.
book: setup
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going --builder html

## Run every test: package, notebooks (papermill), nbgrader grading end to end, book build, lint.
test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache
