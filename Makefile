PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint sample-models bench

# torch==2.13.0 goes in first so that the project's torch range is already met by the CPU wheel
# and no CUDA build is ever pulled in.
setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'

test:
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

sample-models:
	$(BIN)/python sample_models/make_samples.py

# every benchmark in turn (several minutes); each prints its ratios, bench/README.md records them
bench:
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done
