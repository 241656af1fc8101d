# Entry points. Both targets set up what they need on a fresh machine with Python 3.11+
# and make, and are safe to re-run.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
DEMO_PEOPLE ?= 20000
DEMO_SEED ?= 2014

.PHONY: demo test bench lint typecheck pytest install lock chromium clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Consentry needs Python 3.11 or newer" or 0)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/consentry demo --people $(DEMO_PEOPLE) --seed $(DEMO_SEED)

# Every benchmark under bench/: bench/results.json, results.md (ratios) and results.png.
bench: $(STAMP)
	$(BIN)/python bench/_all.py

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	CONSENTRY_DEBUG=1 CONSENTRY_VAR_DIR=$(CURDIR)/var/typecheck $(BIN)/mypy

pytest: $(STAMP) chromium
	PATH=$(CURDIR)/$(BIN):$$PATH sh scripts/run-tests

# Browser tests drive Debian's Chromium; they fail (never skip) without it.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium'"; exit 1; \
	  fi; }

# Regenerate requirements.lock from requirements.in (needs uv: pip install uv).
lock:
	uv pip compile requirements.in --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
