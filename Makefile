# Every target sets up what it needs: a virtual environment in .venv with the package
# installed in editable mode and the extras of that target.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: all venv test test-pyqt6 test-pyside6 demo bench bench-smoke docs lint clean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# The whole suite under PyQt6, then under PySide6.
test: test-pyqt6 test-pyside6

test-pyqt6: $(STAMP)
	QT_API=pyqt6 PYTEST_QT_API=pyqt6 $(PY) -m pytest $(PYTEST_ARGS)

test-pyside6: $(STAMP)
	QT_API=pyside6 PYTEST_QT_API=pyside6 $(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m mosaic_parallel demo --headless --out demo-output

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build .pytest_cache .mypy_cache .ruff_cache

# Documentation (docs/_build/html) with warnings as errors, and lint: ruff and mypy.
docs: $(STAMP)
	$(PY) -m sphinx -E -W --keep-going -b html docs docs/_build/html

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
