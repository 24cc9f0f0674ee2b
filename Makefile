# wslab: two commands set everything up on a fresh machine.
#   make demo   the main job, end to end on bundled data (results in out/)
#   make test   lint, type-check and the whole test suite
# Both create .venv and install what they need on first use, OS packages included
# (scripts/os-deps.sh: apt-get as root or with passwordless sudo, else one line saying what
# to run).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
LABSTAMP := $(VENV)/.installed-lab
QUICK  ?=

.PHONY: demo test lint typecheck pytest lab app bench soak clean venv os-deps native

$(STAMP): pyproject.toml
	@PYTHON=$(PYTHON) sh scripts/os-deps.sh demo
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LABSTAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	touch $(LABSTAMP)

venv: $(STAMP)

# The compiled twin of the adaptive selector (scripts/build_native.py: quiet when up to
# date, one line and plain Python when there is no C compiler)
native: $(STAMP)
	@$(PY) scripts/build_native.py

# redis-server, nginx, chromium, node + npm, and the npm packages the tests run against
os-deps:
	@PYTHON=$(PYTHON) sh scripts/os-deps.sh test

demo: native
	$(VENV)/bin/wslab demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: os-deps native
	$(VENV)/bin/pytest

test: os-deps lint typecheck pytest

lab: $(LABSTAMP)
	$(VENV)/bin/wslab lab

NOTEBOOK ?= 02
app: $(LABSTAMP)
	$(VENV)/bin/wslab lab --app --notebook $(NOTEBOOK)

bench: native
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick,)

MINUTES ?= 10
soak: $(STAMP)
	$(PY) benchmarks/soak.py --minutes $(MINUTES)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
