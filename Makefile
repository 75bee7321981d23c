# Two commands matter: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench plot install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test,examples,bench,crosscheck]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/logistic_regression.py --out plots

lint: $(STAMP)
	$(PY) -m ruff check jaxent tests examples benchmarks
	$(PY) -m ruff format --check jaxent tests examples benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) -m benchmarks

plot: $(STAMP)
	$(PY) benchmarks/plot.py

clean:
	rm -rf $(VENV) plots .pytest_cache .mypy_cache .ruff_cache
