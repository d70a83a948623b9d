# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv lock run test lint format typecheck bandit pytest audit benchmark chaos clean

# Both distributions editable, orca-burst first: pip 23 resolves the `dev` extra's orca-devstack
# from ./devstack only in this order. Every other package is pinned by constraints.txt (`make lock`),
# which never pins the two editable ones.
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check
EDITABLES   := -e '.[dev,test]' -e ./devstack

$(STAMP): pyproject.toml devstack/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_INSTALL) -c constraints.txt $(EDITABLES)
	touch $(STAMP)

venv: $(STAMP)

## make lock: re-pin constraints.txt from a fresh venv (the newest versions pyproject allows)
lock:
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" $(PIP_INSTALL) $(EDITABLES); \
	{ echo "# Every pinned package of the dev+test environment (make venv installs with -c)."; \
	  echo "# Made by make lock (pip freeze --exclude-editable in a fresh venv); do not edit."; \
	  "$$tmp/venv/bin/python" -m pip freeze --exclude-editable; } > "$$tmp/constraints.txt"; \
	mv "$$tmp/constraints.txt" constraints.txt
	@echo "constraints.txt re-pinned; make venv reinstalls from it"

## make run: the embedded stack (Temporal + UI, AWS and Kubernetes emulators, worker, watcher) with example pods
run: venv
	$(BIN)/orca dev --example-pods

## make test: ruff (lint + format check), shellcheck, cfn-lint, mypy, bandit, pip-audit, then every
## test tier with the coverage floor
test: venv lint typecheck audit pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/shellcheck orca/instance_runner.sh
	$(BIN)/cfn-lint deploy/aws/*.cfn.yaml

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy

# Skips for the devstack only (never shipped), on top of pyproject's [tool.bandit] skips:
#   B310 urlopen: probes of the local servers it started, at http URLs it built;
#   B311 random: the AWS emulator's seeded fault injection, deliberately reproducible;
#   B404, B603 subprocess: starting the local servers is the devstack's job (no shell, fixed argv);
#   B406 xml: xml.sax.saxutils.escape escapes the emulator's XML output, it parses nothing.
BANDIT_DEV_SKIPS := B310,B311,B404,B603,B406
bandit: venv
	$(BIN)/bandit -c pyproject.toml -q -r orca workflows activities worker watcher
	$(BIN)/bandit -c pyproject.toml -q -s $(BANDIT_DEV_SKIPS) -r devstack/orca_devstack

## the coverage total must stay at or above .coverage-floor (tests/coverage_floor.py);
## `make pytest COVERAGE=0` runs the tests without measuring (faster, no floor check).
## PYTEST_WORKERS test processes (pytest-xdist), each test file whole in one of them (its
## module fixtures are shared); the stack tests mostly wait, so two share the two cores well.
COVERAGE ?= 1
PYTEST_WORKERS ?= 2
PYTEST_ARGS := -n $(PYTEST_WORKERS) --dist loadfile
pytest: venv
ifeq ($(COVERAGE),0)
	$(BIN)/pytest $(PYTEST_ARGS)
else
	$(BIN)/pytest $(PYTEST_ARGS) --cov --cov-report=
	$(BIN)/python -m tests.coverage_floor
endif

## make audit: bandit, then pip-audit of constraints.txt (SKIPPED when the service is unreachable)
audit: bandit
	$(BIN)/python -m tests.pip_audit constraints.txt

benchmark: venv
	$(BIN)/python -m benchmarks.burst

## make chaos: 120 fuzzed pods while the worker, watcher and Temporal server are killed (tests/chaos/)
CHAOS_PODS ?= 120
CHAOS_SEED ?= 7
chaos: venv
	$(BIN)/python -m tests.chaos.runner --pods $(CHAOS_PODS) --seed $(CHAOS_SEED)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .orca .coverage .coverage.*
