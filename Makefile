# Reel Content — every workflow goes through these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: install test lint typecheck pytest coverage-gate dev demo bench migrate openapi smoke fmt clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## test: lint + typecheck + the whole pytest suite with coverage gates
test: install lint typecheck pytest coverage-gate

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

pytest: install
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

openapi: install
	$(BIN)/python -m shared.api.openapi > openapi.json

smoke: install
	$(BIN)/python -m scripts.smoke --base-url "$(BASE_URL)" --token "$(TOKEN)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .local
