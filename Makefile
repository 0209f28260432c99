# Everything runs from a local virtualenv that each target creates on first use,
# so a fresh machine needs nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?= -n 2

DISTS = shared/pyproject.toml services/inventory/pyproject.toml \
        services/shipping/pyproject.toml services/support/pyproject.toml

.DEFAULT_GOAL := help

.PHONY: help up demo test lint format clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): $(DISTS) requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e shared -e services/inventory -e services/shipping \
		-e services/support -r requirements-dev.txt
	touch $(STAMP)

up: $(STAMP)  ## Run all services in one process (SQLite under var/, in-memory bus)
	$(BIN)/logistics up

demo: $(STAMP)  ## Like up, and load demo data over the API (see README "Walk-through")
	$(BIN)/logistics up --demo

test: $(STAMP)  ## Run the test suite (PostgreSQL/RabbitMQ/Redis tests skip if unreachable)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## Remove the virtualenv and local data
	rm -rf $(VENV) var
