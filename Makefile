# Reel Content — every workflow goes through these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080
# make lint-tfschema's provider packages and the schemas extracted from them (below).
TFSCHEMA := tools/tfschema
TFSCHEMA_NODE := $(TFSCHEMA)/node_modules/.package-lock.json
TFSCHEMA_JSON := $(TFSCHEMA)/node_modules/.tfschema.json

.PHONY: install test lint lint-terraform lint-tfschema lint-openapi typecheck pytest coverage-gate dev demo bench migrate \
	openapi smoke fmt clean rehearse rehearse-test lint-ts ts-client web

## install: the venv from the locked tree (every package pinned and hash-checked; make lock)
install: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-dev.lock
	$(BIN)/pip check
	touch $(STAMP)

## test: lint + typecheck + the whole pytest suite with coverage gates
test: install lint typecheck pytest coverage-gate

lint: install lint-terraform lint-tfschema lint-workflows lint-openapi lint-ts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## lint-openapi: Redocly CLI (pinned in package.json / package-lock.json, installed by
## npm ci into the git-ignored node_modules/) over openapi.json; redocly.yaml has the rules.
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

lint-openapi: $(NODE_STAMP)
	node_modules/.bin/redocly lint openapi.json

## lint-ts: tsc --strict over the TypeScript client (clients/ts) and the example app (examples/web)
lint-ts: $(NODE_STAMP)
	node_modules/.bin/tsc -p clients/ts/tsconfig.json --noEmit
	node_modules/.bin/tsc -p examples/web/tsconfig.json --noEmit

## ts-client: regenerate the client's types from openapi.json (a test keeps them equal)
ts-client: $(NODE_STAMP)
	node_modules/.bin/openapi-typescript openapi.json --default-non-nullable false -o clients/ts/src/schema.ts

## web: build the example app (examples/web, Vite + TypeScript) into examples/web/dist
web: $(NODE_STAMP)
	node_modules/.bin/vite build examples/web

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

# The TypeScript client's tests and the browser journeys run node tools from node_modules;
# the journeys need Debian's chromium (installed when missing and we are root, never through
# a sudo prompt; if it cannot be installed, they skip and say why).
pytest: install $(TFSCHEMA_JSON) $(NODE_STAMP)
	-@if [ "$$(id -u)" -eq 0 ]; then bash scripts/system_deps.sh chromium:chromium; fi
	$(BIN)/python -m pytest --cov --cov-report= $(PYTEST_ARGS)

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

openapi: install $(NODE_STAMP)
	$(BIN)/python -m shared.api.openapi > openapi.json
	$(MAKE) --no-print-directory ts-client

## smoke: BASE_URL=… with the token in SMOKE_TOKEN (environment) or TOKEN_FILE=<file>; the
## recipe never names the token, so make cannot echo it into a console or CI log.
smoke: install
	$(BIN)/python -m scripts.smoke --base-url "$(BASE_URL)" $(if $(TOKEN_FILE),--token-file "$(TOKEN_FILE)")

## rehearse: every function from its own zip, in production mode, behind nginx (Ctrl-C stops all)
rehearse: install $(NODE_STAMP)
	bash scripts/system_deps.sh nginx:nginx
	$(BIN)/python -m devtools.rehearse

## rehearse-test: rehearse, run smoke + the e2e journey + the browser journey, Ctrl-C, check
rehearse-test: install $(NODE_STAMP)
	bash scripts/system_deps.sh nginx:nginx chromium:chromium
	$(BIN)/python -m devtools.rehearse_test

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build node_modules $(TFSCHEMA)/node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .local

CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

$(CHECKOV_STAMP): requirements-checkov.lock
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-checkov.lock
	$(CHECKOV_VENV)/bin/pip check
	touch $(CHECKOV_STAMP)

## lint-tfschema: every resource, data and provider block of terraform/ against the
## published schema of the provider version versions.tf selects, offline: the cdktf
## provider packages (tools/tfschema/package.json + package-lock.json, npm ci into the
## git-ignored tools/tfschema/node_modules/) carry the schemas in their jsii assemblies;
## devtools/tfschema.py extracts them once, then parses the .tf files with python-hcl2.
$(TFSCHEMA_NODE): $(TFSCHEMA)/package.json $(TFSCHEMA)/package-lock.json
	cd $(TFSCHEMA) && npm ci --no-audit --no-fund --loglevel=error

$(TFSCHEMA_JSON): $(TFSCHEMA_NODE) devtools/tfschema.py | install
	$(BIN)/python -m devtools.tfschema extract --out $@

lint-tfschema: install $(TFSCHEMA_JSON)
	$(BIN)/python -m devtools.tfschema check terraform

## lint-terraform: checkov over terraform/, in its own venv (checkov and python-hcl2 both ship `hcl2`)
lint-terraform: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d terraform --framework terraform --skip-download --compact --quiet

# --- Deployment (issue 12): locks, the registry's Terraform file, function zips -------
.PHONY: lock functions-json gateway-openapi package lint-workflows

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

## gateway-openapi: the API Gateway's OpenAPI 2.0 document from the route table (a test
## keeps them equal); Terraform's templatefile() fills in only the function URLs
gateway-openapi: install
	$(BIN)/python -m devtools.gateway > terraform/gateway/openapi2.yaml.tftpl

## package: build/functions/<name>.zip for every registry function (what Terraform uploads)
package: install
	$(BIN)/python -m scripts.package --out build/functions

## lint-workflows: the GitHub workflows against their schema, then zizmor's audit (offline)
lint-workflows: install
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --min-severity low .github/workflows
# --- end deployment ---------------------------------------------------------------------
