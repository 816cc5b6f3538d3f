# rltune: one entry point for installs, tests, synthesis, deploys, benchmarks and the demo.
# Installs are stamped with a hash of the files that define them, so re-running is a no-op.
SHELL := /bin/bash
.DEFAULT_GOAL := install

PYTHON ?= python3
VENV := .venv
TOOLS_VENV := .venv-tools
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ENV ?= dev

REQ_HASH := $(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-12)
TOOLS_HASH := $(shell cat requirements-tools.txt | sha256sum | cut -c1-12)
NPM_HASH := $(shell cat package.json package-lock.json | sha256sum | cut -c1-12)
VENV_STAMP := $(VENV)/.installed-$(REQ_HASH)
TOOLS_STAMP := $(TOOLS_VENV)/.installed-$(TOOLS_HASH)
NPM_STAMP := node_modules/.installed-$(NPM_HASH)

.PHONY: install test test-fast lint synth deploy diff destroy bench demo schema clean

install: $(VENV_STAMP) $(TOOLS_STAMP) $(NPM_STAMP)

$(VENV_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

# checkov pins an old boto3 that breaks the SageMaker SDK, so it lives in its own venv.
$(TOOLS_STAMP): requirements-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/pip install --quiet -r requirements-tools.txt
	@rm -f $(TOOLS_VENV)/.installed-* && touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-* && touch $@

# The README's test command: lint, then every test (unit and integration).
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -m unit

# Every benchmark prints ratios measured side by side in one run (this machine is shared and noisy).
bench: install
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

# The payload's JSON Schema, committed for editors' autocompletion.
schema: $(VENV_STAMP)
	$(VENV)/bin/rltune schema > examples/payload.schema.json

clean:
	rm -rf cdk.out .build runs .pytest_cache .ruff_cache
