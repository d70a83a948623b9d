# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv run test lint format typecheck pytest benchmark chaos clean

$(STAMP): pyproject.toml devstack/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,test]' -e ./devstack
	touch $(STAMP)

venv: $(STAMP)

## make run: the embedded stack (Temporal + UI, AWS and Kubernetes emulators, worker, watcher) with example pods
run: venv
	$(BIN)/orca dev --example-pods

## make test: ruff (lint + format check), shellcheck, mypy, then every test tier
test: venv lint typecheck pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/shellcheck orca/instance_runner.sh

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest

benchmark: venv
	$(BIN)/python -m benchmarks.burst

## make chaos: 120 fuzzed pods while the worker, watcher and Temporal server are killed (tests/chaos/)
CHAOS_PODS ?= 120
CHAOS_SEED ?= 7
chaos: venv
	$(BIN)/python -m tests.chaos.runner --pods $(CHAOS_PODS) --seed $(CHAOS_SEED)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .orca
