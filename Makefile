# Everything runs from a local virtualenv that each target creates on first use,
# so a fresh machine needs nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?= -n 2

DISTS = shared/pyproject.toml services/inventory/pyproject.toml \
        services/shipping/pyproject.toml services/support/pyproject.toml

# Lock files (`make lock` writes both, with hashes, for CPython 3.11 on Linux):
#   requirements.lock          runtime + dev tooling: what this venv (and so CI) installs
#   requirements-runtime.lock  runtime only, the same versions: what services/*/Dockerfile install
# The project's own distributions are not in them: they are installed after, with --no-deps.
LOCK         = requirements.lock
RUNTIME_LOCK = requirements-runtime.lock
# Locked too, besides the four distributions and requirements-dev.txt: pip itself, and
# setuptools, which builds the distributions and which pyramid imports (pkg_resources)
# at run time: from 80.9 that import warns on every start, 82 removes it; 78.1.1: CVE-2025-47273.
LOCK_ALSO    = 'pip>=25.3' 'setuptools>=78.1.1,<80.9'
LOCK_ARGS   ?=
UV_VERSION   = 0.13.9
UV_VENV      = $(VENV)/uv-$(UV_VERSION)
UV_COMPILE   = $(UV_VENV)/bin/uv pip compile --quiet --python-version 3.11 --python-platform linux \
               --generate-hashes --custom-compile-command "make lock" \
               --no-emit-package logistics-shared --no-emit-package logistics-inventory \
               --no-emit-package logistics-shipping --no-emit-package logistics-support $(LOCK_ARGS)

.DEFAULT_GOAL := help

.PHONY: help up demo test lint format lock clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# The locked versions, hash-checked (pip too: the lock has it), then the four distributions
# editable, without resolving again; pip check fails when a pyproject.toml asks for
# something the lock lacks (run `make lock`).
$(STAMP): $(DISTS) requirements-dev.txt $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e shared \
		-e services/inventory -e services/shipping -e services/support
	$(BIN)/python -m pip check
	touch $(STAMP)

up: $(STAMP)  ## Run all services in one process (SQLite under var/, in-memory bus)
	$(BIN)/logistics up

demo: $(STAMP)  ## Like up, and load demo data over the API (see README "Walk-through")
	$(BIN)/logistics up --demo

test: $(STAMP)  ## Run the test suite (PostgreSQL/RabbitMQ/Redis tests skip if unreachable)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff check, ruff format --check and mypy (settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock:  ## Rewrite requirements*.lock from the pyproject.toml files (LOCK_ARGS=--upgrade: newest versions)
	test -x $(UV_VENV)/bin/uv || { $(PYTHON) -m venv $(UV_VENV) \
		&& $(UV_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	printf '%s\n' $(LOCK_ALSO) ./shared ./services/inventory ./services/shipping ./services/support \
		| $(UV_COMPILE) - requirements-dev.txt -o $(LOCK)
	printf '%s\n' $(LOCK_ALSO) ./shared ./services/inventory ./services/shipping ./services/support \
		| $(UV_COMPILE) -c $(LOCK) - -o $(RUNTIME_LOCK)

clean:  ## Remove the virtualenv and local data
	rm -rf $(VENV) var
