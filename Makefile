# Developer entry points. Everything runs from the project venv in .venv.
#
#   make venv   create .venv and install goldwire with test extras (re-installs
#               only when pyproject.toml is newer than .venv/.installed)
#   make run    goldwire up: Redis (if needed) and every service, until Ctrl-C; installs
#               the runtime only (.venv/.installed-run), not the test and bench tools
#   make test   pytest; pass extra arguments with PYTEST_ARGS='-k token -x'
#   make test-unit    tests/unit only: no processes, no sockets, no Redis (seconds)
#   make test-service tests/service: code in-process against a private real Redis
#   make test-system  tests/system: real gateways and services as processes
#   make lint   ruff check
#   make deploy-check validate Dockerfile, compose.yaml and every kustomize overlay offline
#   make bench        benchmark suite, about 12 minutes: writes docs/benchmarks.md and its chart
#   make bench-smoke  every benchmark scenario tiny, under a minute (CI runs it)
#   make demo   Goldwire and the documents example app (examples/documents); prints the URL
#   make browser      Debian's chromium for the browser tests, when /usr/bin/chromium is missing
#   make sdk    the browser SDK: npm ci, typecheck, and check the committed build is current
#
# PYTEST_RC=FILE makes `make test` write pytest's own exit code to FILE, since
# make itself reports every failure as 2 (.ci/run needs to tell 5 apart).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PYTEST_ARGS ?=
PYTEST_RC ?=

.PHONY: venv run test test-unit test-service test-system lint

venv: $(STAMP)

# A venv whose creation failed halfway (Debian without python3-venv leaves one with no
# pip) is removed, so the next make tries again instead of taking it for a working one.
$(PY):
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "error: $(PYTHON) cannot create \
	a venv; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(PY) -m pip --version >/dev/null || { rm -rf $(VENV); exit 1; }

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]' || { rm -f $(STAMP) $(RUN_STAMP); exit 1; }
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[run]' || { rm -f $(RUN_STAMP); exit 1; }
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/goldwire up

test: venv
	@rc=0; $(PY) -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ -n "$(PYTEST_RC)" ]; then echo $$rc > "$(PYTEST_RC)"; fi; \
	exit $$rc

test-unit test-service test-system: test-%: venv
	$(PY) -m pytest -q tests/$* $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

.PHONY: bench bench-smoke

bench: venv
	$(PY) bench/run_all.py

bench-smoke: venv
	$(PY) bench/run_all.py --smoke

.PHONY: deploy-check

DEPLOY_STAMP := $(VENV)/.deploy-tools

$(DEPLOY_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install -e '.[test,deploy-check]'
	touch $(DEPLOY_STAMP)

deploy-check: $(DEPLOY_STAMP)
	bash deploy/check.sh

.PHONY: demo browser

# DEMO_PORT is the app's port; the gateway keeps GATEWAY_PORT (8000).
demo: venv
	$(PY) -m examples.documents.demo

# tests/system/test_browser_documents.py drives this binary through Playwright; the browser is
# Debian's package, never a download (`playwright install` cannot reach its CDN here).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@if [ -x $(CHROMIUM) ]; then echo "$(CHROMIUM): $$($(CHROMIUM) --version 2>/dev/null)"; \
	else $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; fi

.PHONY: sdk

# The browser SDK: install its pinned dev dependencies, typecheck, and fail if the committed
# build (services/gateway/static/goldwire.js) is not what the sources build to. `npm run build`
# in libs/client-js rebuilds it; `make test` runs its Node tests against real gateways.
sdk:
	cd libs/client-js && npm ci --no-audit --no-fund && npm run typecheck && npm run check-built
