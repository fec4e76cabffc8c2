# Every target bootstraps .venv on first use: only python3 and make are needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint check bench fuzz mutation clean
FUZZ_TIME ?= 60

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,fuzz]'
	touch $(STAMP)

## run: the main job — a local multi-node cluster on the embedded example
run: $(STAMP)
	$(BIN)/linkstate demo

## test: lint, type-check and the test suite (what CI runs)
test: lint $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: codec, routing and convergence benchmarks (tables + JSON; plots need the bench extra)
bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python bench/bench_codec.py
	$(BIN)/python bench/bench_routing.py
	$(BIN)/python bench/convergence.py run --shape ring --groups 20 --servers 2 --event minor --transport tcp --runs 5
	$(BIN)/python bench/convergence.py run --shape ring --groups 20 --servers 2 --event oscillation
	$(BIN)/python bench/convergence.py run --shape ring --groups 250 --servers 4 --event minor --runs 1

## mutation: mutation testing (mutmut) of the core's state machines, one module at a time; not in CI, hours (docs/TESTING.md).
##   MUTATE="master quorum" limits it to those modules of linkstate/core; JOBS mutants at once (default 2).
##   Scores and the equivalent mutants: docs/TESTING.md
JOBS ?= 2
MUTATE ?=
mutation: $(STAMP)
	$(BIN)/python -m tests.mutation --jobs $(JOBS) $(MUTATE)

## fuzz: every fuzz target for FUZZ_TIME seconds each (docs/FUZZING.md; findings in .fuzz/findings)
fuzz: $(STAMP)
	$(BIN)/linkstate fuzz all --time $(FUZZ_TIME)

clean:
	rm -rf $(VENV) build *.egg-info mutants
