# Two commands on a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
# Every target installs what it needs first (pinned by constraints.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP_VERSION := 26.3
export MDM_HOME ?= $(CURDIR)/.mdm
DEMO_ENTITIES ?= 10000
DEMO_LANDING  ?= $(MDM_HOME)/landing
BENCH_SIZES   ?= 100000
# test files run in parallel, one process per core (pytest-xdist); PYTEST_WORKERS=0 runs serially
PYTEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install demo test test-fast lint bench constraints clean help

help:
	@echo "make demo   - install, generate demo data and run the daily pipeline on DuckDB"
	@echo "make test   - install and run the whole test suite (DuckDB, real PostgreSQL, Airflow)"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - benchmark the pipeline (sizes: BENCH_SIZES=$(BENCH_SIZES))"

install: $(VENV)/.installed

# the runtime package (plugins/customer_mdm) and, beside it, the dev-only tools (devtools/mdm_devtools:
# demo-data generator, bench, local PostgreSQL, test fixtures), both editable
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]" -e ./devtools
	touch $@

demo: install
	@test -d "$(DEMO_LANDING)/crm" || $(BIN)/python -m mdm_devtools generate --entities $(DEMO_ENTITIES) --out "$(DEMO_LANDING)"
	$(BIN)/mdm run --landing "$(DEMO_LANDING)" --quiet

test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not postgres and not airflow and not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check plugins devtools dags tests
	$(BIN)/ruff format --check plugins devtools dags tests
	$(BIN)/mypy

bench: install
	$(BIN)/python -m mdm_devtools.bench --sizes $(BENCH_SIZES)

# Re-resolve the pins after changing pyproject.toml dependencies (needs the package index).
constraints:
	rm -rf .venv-resolve && $(PYTHON) -m venv .venv-resolve
	.venv-resolve/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	.venv-resolve/bin/pip install --quiet -e ".[dev]" -e ./devtools
	.venv-resolve/bin/pip freeze --exclude-editable --exclude customer-mdm --exclude customer-mdm-devtools | sed '/^-e /d' > constraints.txt
	rm -rf .venv-resolve

clean:
	rm -rf $(VENV) .mdm
