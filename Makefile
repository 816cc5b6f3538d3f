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

.PHONY: install test test-fast lint synth deploy diff destroy bench demo schema key-catalog clean

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

# ---- CDK (stack engineer): synth / deploy / diff / destroy / lint. Every target prints what it runs.
# `npx cdk` is the CLI pinned in package.json; cdk.json runs app.py with .venv's Python.
# Synthesis is offline: no AWS calls and no Docker (the image is only staged; `deploy` builds and pushes it).
CDK := npx --no-install cdk
ENVIRONMENTS := dev prod
CDK_FLAGS := --no-notices --no-version-reporting
# No credentials reach the CLI during synth, so it never calls STS or the instance metadata service.
CDK_OFFLINE := env -u AWS_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
CFN_LINT_IGNORE := W3005

synth: $(VENV_STAMP) $(NPM_STAMP)
	@set -e; for env in $(ENVIRONMENTS); do \
	  echo "+ rm -rf cdk.out/$$env"; rm -rf cdk.out/$$env; \
	  cmd="$(CDK) synth --quiet $(CDK_FLAGS) -c env=$$env -o cdk.out/$$env"; \
	  echo "+ $$cmd"; $(CDK_OFFLINE) $$cmd; \
	done; echo "templates: $$(ls cdk.out/*/*.template.json | tr '\n' ' ')"

deploy: $(VENV_STAMP) $(NPM_STAMP)
	@cmd="$(CDK) deploy $(CDK_FLAGS) -c env=$(ENV) -o cdk.out/$(ENV) RlTune-$(ENV)"; echo "+ $$cmd"; $$cmd

diff: $(VENV_STAMP) $(NPM_STAMP)
	@cmd="$(CDK) diff $(CDK_FLAGS) -c env=$(ENV) -o cdk.out/$(ENV) RlTune-$(ENV)"; echo "+ $$cmd"; $$cmd

destroy: $(VENV_STAMP) $(NPM_STAMP)
	@cmd="$(CDK) destroy $(CDK_FLAGS) -c env=$(ENV) -o cdk.out/$(ENV) RlTune-$(ENV)"; echo "+ $$cmd"; $$cmd

# Static checks on the code and on what `synth` produced (templates and the staged Dockerfile).
# Every check runs even if an earlier one fails; the target fails if any did.
lint: synth $(TOOLS_STAMP)
	@status=0; \
	run() { echo "+ $$*"; "$$@" || status=1; }; \
	run $(VENV)/bin/ruff check .; \
	run $(VENV)/bin/cfn-lint --ignore-checks $(CFN_LINT_IGNORE) -- cdk.out/*/*.template.json; \
	for t in cdk.out/*/*.template.json; do \
	  run $(TOOLS_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f $$t; \
	done; \
	for f in $$(ls cdk.out/*/asset.*/training_image/Dockerfile 2>/dev/null | awk -F/ '!seen[$$3]++'); do \
	  run $(VENV)/bin/hadolint $$f; \
	done; \
	if [ $$status -ne 0 ]; then echo "lint: FAILED (see above)"; else echo "lint: all checks passed"; fi; \
	exit $$status

# Every benchmark prints ratios measured side by side in one run (this machine is shared and noisy).
bench: install
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

# The main job: set up, then tune the built-in default payload on this machine (no AWS account needed).
# Extra options go through DEMO_ARGS, e.g. `make demo DEMO_ARGS="--max-jobs 2 --budget-steps 20000"`.
demo: $(VENV_STAMP)
	$(VENV)/bin/rltune local $(DEMO_ARGS)

# The payload's JSON Schema, committed for editors' autocompletion.
schema: $(VENV_STAMP)
	$(VENV)/bin/rltune schema > examples/payload.schema.json

# The RLlib config keys the trainer accepts, per algorithm, for the payload validator (which cannot import Ray).
# Regenerate after every Ray upgrade; tests/integration/test_key_catalog.py fails until you do.
key-catalog: $(VENV_STAMP)
	cd training_image && ../$(PY) -m rltune_trainer.key_catalog > ../rltune/rllib_config_keys.json.tmp
	mv rltune/rllib_config_keys.json.tmp rltune/rllib_config_keys.json

clean:
	rm -rf cdk.out .build runs .pytest_cache .ruff_cache
