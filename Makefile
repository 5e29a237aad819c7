# Reel Content — every workflow goes through these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: install test lint lint-terraform lint-openapi typecheck pytest coverage-gate dev demo bench migrate \
	openapi smoke fmt clean rehearse rehearse-test mutate

## install: the venv from the locked tree (every package pinned and hash-checked; make lock)
install: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-dev.lock
	$(BIN)/pip check
	touch $(STAMP)

## test: lint + typecheck + the whole pytest suite with coverage gates
test: install lint typecheck pytest coverage-gate

lint: install lint-terraform lint-workflows lint-openapi
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## lint-openapi: Redocly CLI (pinned in package.json / package-lock.json, installed by
## npm ci into the git-ignored node_modules/) over openapi.json; redocly.yaml has the rules.
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

lint-openapi: $(NODE_STAMP)
	node_modules/.bin/redocly lint openapi.json

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest --cov --cov-report= $(PYTEST_ARGS)

## mutate: mutation testing of the core, slow, not in make test (MUTATE_ONLY=lua|python|auth|…)
mutate: install
	$(BIN)/python -m devtools.mutate

# billing and enforcement are where money is decided: they must stay >= 90% covered.
coverage-gate: install
	$(BIN)/coverage report --include='shared/billing/*,shared/enforcement/*' --fail-under=90

migrate: install
	$(BIN)/python -m shared.db.migrate

dev: install
	$(BIN)/python -m scripts.dev_server --port $(PORT)

demo: install
	$(BIN)/python -m scripts.demo

bench: install
	$(BIN)/python -m bench

openapi: install
	$(BIN)/python -m shared.api.openapi > openapi.json

## smoke: BASE_URL=… with the token in SMOKE_TOKEN (environment) or TOKEN_FILE=<file>; the
## recipe never names the token, so make cannot echo it into a console or CI log.
smoke: install
	$(BIN)/python -m scripts.smoke --base-url "$(BASE_URL)" $(if $(TOKEN_FILE),--token-file "$(TOKEN_FILE)")

## rehearse: every function from its own zip, in production mode, behind nginx (Ctrl-C stops all)
rehearse: install
	bash scripts/system_deps.sh nginx:nginx
	$(BIN)/python -m devtools.rehearse

## rehearse-test: rehearse, run smoke + the e2e journey + the browser journey, Ctrl-C, check
rehearse-test: install
	bash scripts/system_deps.sh nginx:nginx chromium:chromium chromedriver:chromium-driver
	$(BIN)/python -m devtools.rehearse_test

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .local

CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

$(CHECKOV_STAMP): requirements-checkov.lock
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-checkov.lock
	$(CHECKOV_VENV)/bin/pip check
	touch $(CHECKOV_STAMP)

## lint-terraform: checkov over terraform/, in its own venv (checkov and python-hcl2 both ship `hcl2`)
lint-terraform: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d terraform --framework terraform --skip-download --compact --quiet

# --- Deployment (issue 12): locks, the registry's Terraform file, function zips -------
.PHONY: lock functions-json package lint-workflows

# The whole dependency tree with hashes, for every platform and Python >= 3.11:
# requirements.lock (runtime; shipped as each function zip's requirements.txt) and
# requirements-dev.lock (runtime + tools, constrained to the same versions), and
# requirements-checkov.lock (lint-terraform's own venv; its tree needs Python >= 3.11.5).
# Edit the
# direct pins in requirements*.txt, then run this. uv comes from the dev lock.
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock" -q
lock: install
	$(BIN)/uv pip compile requirements.txt $(LOCK_FLAGS) -o requirements.lock
	$(BIN)/uv pip compile requirements-dev.txt $(LOCK_FLAGS) -c requirements.lock -o requirements-dev.lock
	$(BIN)/uv pip compile requirements-checkov.txt $(subst 3.11,3.11.5,$(LOCK_FLAGS)) -o requirements-checkov.lock

## functions-json: terraform/functions.json from shared/api/registry.py (a test keeps them equal)
functions-json: install
	$(BIN)/python -m shared.api.registry > terraform/functions.json

## package: build/functions/<name>.zip for every registry function (what Terraform uploads)
package: install
	$(BIN)/python -m scripts.package --out build/functions

## lint-workflows: the GitHub workflows against their schema, then zizmor's audit (offline)
lint-workflows: install
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --min-severity low .github/workflows
# --- end deployment ---------------------------------------------------------------------
