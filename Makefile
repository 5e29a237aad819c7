# Reel Content — every workflow goes through these targets (`make help` lists them).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
PORT ?= 8080
USER_ID ?= dev
# make lint-tfschema's provider packages and the schemas extracted from them (below).
TFSCHEMA := tools/tfschema
TFSCHEMA_NODE := $(TFSCHEMA)/node_modules/.package-lock.json
TFSCHEMA_JSON := $(TFSCHEMA)/node_modules/.tfschema.json
# The example app's build, and what it is built from (make web; make dev rebuilds it).
WEB_BUILT := examples/web/dist/index.html
WEB_SOURCES := $(wildcard examples/web/index.html examples/web/vite.config.ts \
	examples/web/tsconfig.json examples/web/src/* examples/web/public/* clients/ts/src/*.ts) \
	package.json package-lock.json

.PHONY: help install install-demo install-checkov test lint lint-terraform lint-tfschema lint-openapi \
	typecheck pytest coverage-gate dev demo token bench migrate openapi smoke fmt clean rehearse \
	rehearse-test lint-ts ts-client web mutate

## help: list every target with what it does
help:
	@sed -n 's/^## \([a-z][a-z-]*\): \(.*\)/\1\t\2/p' $(MAKEFILE_LIST) | expand -t 18

# How every lock is installed (tests/e2e/test_stock_pip_install.py runs these recipes with
# the pip that `python -m venv` brings, never upgraded). --no-deps: pip installs exactly the
# lines of the lock and never resolves, so a release on the index cannot change or break
# the install; `pip check` then proves the lock complete.
LOCK_INSTALL := install -q --disable-pip-version-check --no-deps --require-hashes -r

## install-demo: the venv with what make demo / make dev need (runtime + embedded Postgres/Redis)
install-demo: $(DEMO_STAMP)

$(DEMO_STAMP): requirements.lock requirements-demo.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip $(LOCK_INSTALL) requirements-demo.lock
	$(BIN)/pip check >&2
	touch $@

## install: the venv with everything make test needs (the demo set + the tools; make lock)
install: $(STAMP)

# The dev lock holds the demo lock at the same versions (make lock), so it satisfies both.
$(STAMP): requirements.lock requirements-demo.lock requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip $(LOCK_INSTALL) requirements-dev.lock
	$(BIN)/pip check >&2
	touch $@ $(DEMO_STAMP)

## test: lint + typecheck + the whole pytest suite with coverage gates
test: install lint typecheck pytest coverage-gate

## lint: ruff, checkov and the provider schemas over terraform/, the workflows, the OpenAPI document, tsc
lint: install lint-terraform lint-tfschema lint-workflows lint-openapi lint-ts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Redocly CLI is pinned in package.json / package-lock.json and installed by npm ci into the
# git-ignored node_modules/; the stamp is ours, touched only after npm ci succeeded.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make lint-openapi (part of make test) needs Node.js 20+ and npm: install them (e.g. apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## lint-openapi: Redocly CLI over openapi.json (needs Node.js + npm; redocly.yaml has the rules)
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

# make dev serves the built app: it is rebuilt when one of its sources (or the client's) is
# newer than the build. Without npm, or when the build fails, make dev still starts, says
# so, and serves a page explaining how to build the app (scripts/example_not_built/).
# (WEB_BUILT and WEB_SOURCES are set at the top: a prerequisite list is read at once.)
$(WEB_BUILT): $(WEB_SOURCES)
	@if command -v npm >/dev/null; then \
	  $(MAKE) --no-print-directory web || echo "note: the example app did not build (see above); make dev serves a page saying so" >&2; \
	else \
	  echo "note: npm not found, so the example app is not built (install Node.js 20+ and npm, then make web); make dev serves a page saying so" >&2; \
	fi

## fmt: format and auto-fix with ruff
fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## typecheck: mypy --strict on shared/
typecheck: install
	$(BIN)/mypy

## pytest: the whole pytest suite with coverage (PYTEST_ARGS=… to narrow it)
# The TypeScript client's tests and the browser journeys run node tools from node_modules;
# the journeys need Debian's chromium (installed when missing and we are root, never through
# a sudo prompt; if it cannot be installed, they skip and say why).
pytest: install $(TFSCHEMA_JSON) $(NODE_STAMP)
	-@if [ "$$(id -u)" -eq 0 ]; then bash scripts/system_deps.sh chromium:chromium; fi
	$(BIN)/python -m pytest --cov --cov-report= $(PYTEST_ARGS)

## mutate: mutation testing of the core, slow, not in make test (MUTATE_ONLY=lua|python|auth|…)
mutate: install
	$(BIN)/python -m devtools.mutate

## coverage-gate: billing, the plan table and enforcement (where money is decided) stay >= 90% covered
coverage-gate: install
	$(BIN)/coverage report --include='shared/billing/*,shared/plans.py,shared/enforcement/*' --fail-under=90

## migrate: apply schema.sql and migrations/ to DATABASE_URL
migrate: install-demo
	$(BIN)/python -m devtools.compose shared.db.migrate

## dev: every function on one port (PORT=8080), a Standard-plan user, its token, the example page
dev: install-demo $(WEB_BUILT)
	$(BIN)/python -m scripts.dev_server --port $(PORT) --user $(USER_ID)

## demo: the whole journey (create, poll, regenerate, save, search, usage) on a local server
demo: install-demo
	$(BIN)/python -m scripts.demo

## token: print a development token for USER_ID (default dev, whom make dev subscribes; ADMIN=1: admin)
token: install-demo
	@$(BIN)/python -m devtools.devtoken $(USER_ID) --ttl-s 86400 $(if $(ADMIN),--admin)

## bench: the benchmarks; figures and samples land in build/bench/results.json
bench: install
	$(BIN)/python -m bench

## openapi: regenerate openapi.json from the code, and the TypeScript client's types from it
openapi: install $(NODE_STAMP)
	$(BIN)/python -m shared.api.openapi > openapi.json
	$(MAKE) --no-print-directory ts-client

## smoke: the user journey against a deployment: BASE_URL=…, token in SMOKE_TOKEN or TOKEN_FILE=…
# The recipe never names the token, so make cannot echo it into a console or CI log.
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

## clean: remove the venvs, node_modules, build/ and every cache
clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build node_modules $(TFSCHEMA)/node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .local

CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

## install-checkov: checkov's own venv (.venv-checkov; checkov and python-hcl2 both ship hcl2)
install-checkov: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements-checkov.lock
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip $(LOCK_INSTALL) requirements-checkov.lock
	$(CHECKOV_VENV)/bin/pip check >&2
	touch $@

## lint-tfschema: every terraform/ block against the provider's published schema, offline
# The cdktf provider packages (tools/tfschema/package.json + package-lock.json, npm ci into
# the git-ignored tools/tfschema/node_modules/) carry the schemas in their jsii assemblies;
# devtools/tfschema.py extracts them once, then parses the .tf files with python-hcl2.
$(TFSCHEMA_NODE): $(TFSCHEMA)/package.json $(TFSCHEMA)/package-lock.json
	cd $(TFSCHEMA) && npm ci --no-audit --no-fund --loglevel=error

$(TFSCHEMA_JSON): $(TFSCHEMA_NODE) devtools/tfschema.py | install
	$(BIN)/python -m devtools.tfschema extract --out $@

lint-tfschema: install $(TFSCHEMA_JSON)
	$(BIN)/python -m devtools.tfschema check terraform

## lint-terraform: checkov over terraform/, offline, in its own venv
lint-terraform: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d terraform --framework terraform --skip-download --compact --quiet

# --- Deployment: locks, the registry's Terraform file, function zips --------------------
.PHONY: lock functions-json gateway-openapi package lint-workflows

# The whole dependency tree with hashes, for every platform and Python >= 3.11:
# requirements.lock (runtime; shipped as each function zip's requirements.txt),
# requirements-demo.lock (runtime + the embedded servers of make demo / make dev),
# requirements-dev.lock (demo set + tools), each constrained to the versions of the one
# before, and requirements-checkov.lock (lint-terraform's own venv; needs Python >= 3.11.5).
# Edit the direct pins in requirements*.txt, then run this. uv comes from the dev lock.
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock" -q
## lock: recompile every requirements*.lock (hashes, every platform) from requirements*.txt
lock: install
	$(BIN)/uv pip compile requirements.txt $(LOCK_FLAGS) -o requirements.lock
	$(BIN)/uv pip compile requirements-demo.txt $(LOCK_FLAGS) -c requirements.lock -o requirements-demo.lock
	$(BIN)/uv pip compile requirements-dev.txt $(LOCK_FLAGS) -c requirements-demo.lock -o requirements-dev.lock
	$(BIN)/uv pip compile requirements-checkov.txt $(subst 3.11,3.11.5,$(LOCK_FLAGS)) -o requirements-checkov.lock

## functions-json: terraform/functions.json from shared/registry.py (a test keeps them equal)
functions-json: install
	$(BIN)/python -m shared.registry > terraform/functions.json

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
