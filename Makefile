# wslab: two commands set everything up on a fresh machine.
#   make demo   the main job, end to end on bundled data (results in out/)
#   make test   lint, type-check and the whole test suite
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
LABSTAMP := $(VENV)/.installed-lab
QUICK  ?=

.PHONY: demo test lint typecheck pytest lab bench clean venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LABSTAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	touch $(LABSTAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wslab demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest

test: lint typecheck pytest

lab: $(LABSTAMP)
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick,)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
