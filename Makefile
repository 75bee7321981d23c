# Two commands matter: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench plot install clean docs docs-test chromium package package-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test,examples,bench,crosscheck,frameworks]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/logistic_regression.py --out plots

lint: $(STAMP)
	$(PY) -m ruff check jaxent tests examples benchmarks docs
	$(PY) -m ruff format --check jaxent tests examples benchmarks docs

typecheck: $(STAMP)
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

bench: $(STAMP)
	$(PY) -m benchmarks

plot: $(STAMP)
	$(PY) benchmarks/plot.py

clean:
	rm -rf $(VENV) plots .pytest_cache .mypy_cache .ruff_cache site docs/gallery dist

# The documentation site: `make docs` builds it into site/ (running every example),
# `make docs-test` builds it and loads every page in a headless Chromium.
DOCS_STAMP := $(VENV)/.docs-installed
RELEASE_STAMP := $(VENV)/.release-installed

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

$(RELEASE_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[release]"
	touch $(RELEASE_STAMP)

docs: $(DOCS_STAMP)
	rm -rf site docs/gallery
	$(PY) -m sphinx -b html -q docs site

# Debian's Chromium and chromedriver, installed when missing (as root, as on CI).
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

docs-test: docs chromium
	JAXENT_DOCS_TEST=1 $(PY) -m pytest tests/test_site.py -q -p no:cacheprovider

# Wheel and sdist into dist/, checked by twine; `make package-test` installs the wheel
# into a fresh virtual environment and imports jaxent from it.
package: $(RELEASE_STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

package-test: $(RELEASE_STAMP)
	JAXENT_PACKAGE_TEST=1 $(PY) -m pytest tests/test_packaging.py -q -p no:cacheprovider
