# Interlink: the two commands that do all set-up are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean migrate worker

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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

test: lint
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)  ## e.g. make bench BENCH_ARGS=--breakdown (see bench/keys.py --help)
	$(BIN)/python bench/keys.py $(BENCH_ARGS)
	$(BIN)/python bench/webhooks.py $(WEBHOOKS_BENCH_ARGS)

clean:
	rm -rf $(VENV) .interlink .pytest_cache .mypy_cache .ruff_cache
