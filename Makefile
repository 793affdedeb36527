PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint sample-models bench bench-env

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

# A separate environment for the benchmarks: bench_slice.py compares against Regioncam, which is
# installed here only and is never a dependency of splinetool.
BENCH_VENV ?= bench/.venv
BENCH_BIN := $(BENCH_VENV)/bin

bench-env:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet torch==2.13.0
	$(BENCH_BIN)/python -m pip install --quiet -e . regioncam==0.5.2

# every benchmark in turn (many minutes); each prints its ratios, bench/README.md records them
bench: bench-env
	$(BENCH_BIN)/python bench/bench_slice.py
	for script in bench/bench_*.py; do [ $$script = bench/bench_slice.py ] || $(BIN)/python $$script || exit 1; done
