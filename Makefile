# Interlink: the two commands that do all set-up are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean migrate worker npm-fixtures

# npm packages the tests start as local stand-ins for external systems (json-server,
# oauth2-mock-server): `npm ci` into tests/fixtures/npm/node_modules (ignored by git) when npm is
# there and the lock file changed since the last install. Without npm those tests skip.
NPM_DIR := tests/fixtures/npm
NPM_STAMP := $(NPM_DIR)/node_modules/.interlink-installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(NPM_STAMP): $(NPM_DIR)/package-lock.json $(NPM_DIR)/package.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.interlink-installed; \
	else \
		echo "npm not found: tests using json-server and oauth2-mock-server will be skipped"; \
	fi

npm-fixtures: $(NPM_STAMP)

run: $(STAMP)
	$(BIN)/interlink migrate
	$(BIN)/interlink serve

migrate: $(STAMP)
	$(BIN)/interlink migrate

worker: $(STAMP)
	$(BIN)/interlink worker

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: lint npm-fixtures
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)  ## e.g. make bench BENCH_ARGS=--breakdown (see bench/keys.py --help)
	$(BIN)/python bench/keys.py $(BENCH_ARGS)
	$(BIN)/python bench/webhooks.py $(WEBHOOKS_BENCH_ARGS)
	$(BIN)/python bench/outbound.py $(OUTBOUND_BENCH_ARGS)

clean:
	rm -rf $(VENV) .interlink .pytest_cache .mypy_cache .ruff_cache
