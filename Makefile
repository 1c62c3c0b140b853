# The two commands of the README: `make demo` and `make test`. Both create .venv if missing.
# `make test` leaves out the tests marked slow (pyproject.toml); `make test-all` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.thrifty-installed

.PHONY: demo test test-all bench browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "thrifty needs Python 3.11 or newer (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/thrifty run examples/digits.yaml

# Debian's Chromium and ChromeDriver for the tests that look at pages in a real browser.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

test: $(STAMP) browser
	$(PY) -m pytest

test-all: $(STAMP) browser
	THRIFTY_TEST_THOROUGH=1 $(PY) -m pytest -m "slow or not slow"

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) thrifty.db thrifty.db-wal thrifty.db-shm .pytest_cache
