# Two commands matter:  `make book` (installs, then builds _build/html) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= smoke
# The data folder: data/ when it holds the files, else the shared copy beside the clone.
BIRTHPLACE_DATA ?= $(abspath $(if $(wildcard data/wiki.txt),data,../shared/data/birthplaces))
export BIRTHPLACE_DATA
# The GPU machine has no virtual environment: fall back to the system Python there.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)

.PHONY: setup book pdf test test-fast test-tools check-data lint experiments gpu-run london clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[book,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: setup
	$(BIN)/jupyter-book build . --keep-going -W -n

# The whole book as one PDF (_build/pdf/book.pdf): the single-page build printed by headless
# Chromium, offline; chapters already executed by `make book` come from its cache.
pdf: setup
	$(BIN)/python -m tools.book_pdf

# Installs what the tests need beyond Python (Chromium, pdftotext) when missing and allowed.
test: setup test-tools
	$(BIN)/python -m pytest -q

# Everything but the book build and the slow end-to-end runs: under a minute, for development.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not book"

test-tools:
	@tools/ensure-test-tools

# Compares the four data files with the reference copies: make check-data BIRTHPLACE_DATA=folder
check-data: setup
	$(BIN)/python -m lib check-data "$(BIRTHPLACE_DATA)"

lint: setup
	$(BIN)/ruff check .

london: setup
	$(BIN)/python -m lib london

experiments: setup
	$(BIN)/python -m lib experiments --profile $(PROFILE)

# GPU_ARGS passes further options to lib.runs.gpu_run (e.g. GPU_ARGS="--variants vanilla").
gpu-run:
	PYTHONPATH=$(CURDIR) $(GPU_PYTHON) -m lib.runs.gpu_run --profile $(if $(filter smoke mini cpu cpu32 full,$(GPU_PROFILE)),$(GPU_PROFILE),full) $(GPU_ARGS)

clean:
	rm -rf _build
