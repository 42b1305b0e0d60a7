# copool — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
NODE_DIR := tests/calendars/node

.PHONY: run install install-test test lint pytest bench node-deps serve migrate seed clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## make run: install, migrate the SQLite file under var/, seed the demo if empty, serve.
run: install
	@mkdir -p var
	$(BIN)/copool db upgrade
	$(BIN)/copool seed-demo --if-empty
	$(BIN)/copool serve

## make test: lint, then the whole suite on SQLite and a throwaway PostgreSQL.
test: install-test node-deps lint
	scripts/with-postgres.sh $(PY) -m pytest $(PYTEST_ARGS)

pytest: install-test node-deps
	scripts/with-postgres.sh $(PY) -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check app scheduling ledger calendars tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

node-deps:
	@if [ -f $(NODE_DIR)/package.json ]; then \
		if command -v npm >/dev/null 2>&1; then \
			[ -d $(NODE_DIR)/node_modules ] || npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error; \
		else echo "npm not found: the ical.js client test will be skipped"; fi; \
	fi

## make bench: every benchmark in quick mode; JSON under var/bench/.
bench: install-test
	@mkdir -p var/bench
	scripts/with-postgres.sh sh -c 'for b in benchmarks/[a-z]*.py; do \
		n=$$(basename $$b .py); echo "== $$n"; \
		$(PY) $$b --quick --json var/bench/$$n.json || exit 1; done'

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
