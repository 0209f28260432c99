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

.PHONY: help up demo test lint format lock images clean bench

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

# The benchmarks (bench/README.md): minutes, on a quiet machine; never part of `make test`.
# BENCH_ARGS=--quick checks the machinery in short runs; --only=reads,bus picks benches.
BENCH_ARGS ?=
bench: $(STAMP)  ## Run the benchmarks; report (Markdown + PNG plots) under var/bench/latest/
	$(BIN)/python bench/report.py $(BENCH_ARGS)

# The scaling simulation (bench/README.md "scaling_sim.py", issue 13): a load ramp on a local cluster
# of its own for 2-3 minutes, plotted with what the HPA/KEDA objects of deploy/k8s/ would decide.
# SIM_ARGS=--quick: a 20 s smoke run.
SIM_ARGS ?=
.PHONY: bench-scaling
bench-scaling: $(STAMP)  ## Ramp load on a local cluster, simulate the autoscalers; PNG under var/bench/scaling/
	$(BIN)/python bench/scaling_sim.py $(SIM_ARGS)

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

# Images (`make images`, deploy/README.md "Images"): with a Docker engine, `docker build` on the
# Dockerfiles' python:3.11-slim; without one, podman (buildah) on a Debian base made by debootstrap
# from the machine's own apt mirror, cached under var/images/ and imported as $(BASE_IMAGE).
# Every step is skipped when its result exists (the layers are podman's/docker's build cache), so a
# second run only rebuilds what changed. PYTHON_IMAGE=<image>@sha256:<digest> pins the base instead.
IMAGE_SERVICES ?= inventory shipping support
IMAGE_PREFIX   ?= localhost/logistics-
IMAGE_TAG      ?= latest
PYTHON_IMAGE   ?=
BASE_IMAGE     ?= localhost/debian-python:3.11-bookworm
BASE_SUITE     ?= bookworm
BASE_DIR       ?= var/images/debian-python-3.11-$(BASE_SUITE)
BASE_PACKAGES   = python3,python3-venv,python-is-python3,passwd,ca-certificates
# The first archive the machine's apt sources (one-line or deb822) use for $(BASE_SUITE).
DEBIAN_MIRROR  ?= $(shell { sed -n 's|^deb \(\[[^]]*\] *\)\{0,1\}\([^ ]*\) $(BASE_SUITE) .*|\2|p' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; \
	awk 'BEGIN { RS = "" } /(^|\n)Types:[^\n]* deb( |\n|$$)/ && /(^|\n)Suites:[^\n]* $(BASE_SUITE)( |\n|$$)/ \
		{ if (match($$0, /(^|\n)URIs: *[^ \n]+/)) { u = substr($$0, RSTART, RLENGTH); sub(/.*URIs: */, "", u); print u } }' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null; echo http://deb.debian.org/debian; } | head -n 1)
IMAGE_ENGINE   ?= $(shell if docker info >/dev/null 2>&1 && ! docker --version 2>/dev/null | grep -qi podman; \
	then echo docker; else echo podman; fi)

# podman: pip inside the build reaches the index as the host's pip does, through the host's pip
# configuration files, its CA bundle and every local path `pip config list` names (cert, constraint,
# find-links, a file:// index together with the files beside its simple/), mounted read-only.
# Base and builds hold var/images/.lock: concurrent runs wait for each other.
images:  ## Build the service images (IMAGE_SERVICES=inventory: one); podman + a cached Debian base without Docker
	@set -eu; engine='$(IMAGE_ENGINE)'; sudo=''; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	if [ "$$engine" = docker ]; then \
		for svc in $(IMAGE_SERVICES); do \
			docker build $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) \
				--build-arg RUNTIME_LOCK_SHA256="$$(sha256sum $(RUNTIME_LOCK) | cut -c1-64)" \
				-f services/$$svc/Dockerfile -t $(IMAGE_PREFIX)$$svc:$(IMAGE_TAG) .; \
		done; exit 0; \
	fi; \
	command -v podman >/dev/null || { echo "make images: neither a Docker engine nor podman" \
		"(apt-get install podman buildah debootstrap runc)" >&2; exit 1; }; \
	mkdir -p var/images; exec 9>var/images/.lock; flock 9; \
	base='$(or $(PYTHON_IMAGE),$(BASE_IMAGE))'; \
	if [ -z '$(PYTHON_IMAGE)' ] && ! podman image exists '$(BASE_IMAGE)'; then \
		if [ ! -d '$(BASE_DIR)' ]; then \
			echo "images: debootstrap $(BASE_SUITE) from $(DEBIAN_MIRROR) into $(BASE_DIR)"; \
			$$sudo rm -rf '$(BASE_DIR).tmp'; mkdir -p "$$(dirname '$(BASE_DIR)')"; \
			$$sudo debootstrap --variant=minbase --include=$(BASE_PACKAGES) \
				$(BASE_SUITE) '$(BASE_DIR).tmp' '$(DEBIAN_MIRROR)'; \
			$$sudo sh -c 'rm -f "$$1"/var/cache/apt/archives/*.deb; rm -rf "$$1"/var/lib/apt/lists/*' \
				sh '$(BASE_DIR).tmp'; \
			$$sudo mv '$(BASE_DIR).tmp' '$(BASE_DIR)'; \
		fi; \
		$$sudo tar -C '$(BASE_DIR)' -c . | podman import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - '$(BASE_IMAGE)'; \
	fi; \
	binds=''; \
	for f in /etc/pip.conf /etc/xdg/pip/pip.conf /etc/ssl/certs/ca-certificates.crt; do \
		[ ! -f "$$f" ] || binds="$$binds $$f:$$f"; done; \
	for f in "$${XDG_CONFIG_HOME:-$$HOME/.config}/pip/pip.conf:/root/.config/pip/pip.conf" \
		"$$HOME/.pip/pip.conf:/root/.pip/pip.conf"; do \
		[ ! -f "$${f%%:*}" ] || binds="$$binds $$f"; done; \
	for p in $$($(firstword $(wildcard $(BIN)/python) $(PYTHON)) -m pip config list 2>/dev/null | sed -e 's/^[^=]*=//' -e "s/^'//" -e "s/'$$//" \
		| tr ' ' '\n' | sed -e 's|^file://||' -e 's|/$$||' | grep '^/' || true); do \
		[ -e "$$p" ] || continue; [ "$${p##*/}" != simple ] || p="$${p%/simple}"; \
		binds="$$binds $$p:$$p"; done; \
	mounts=$$(printf '%s\n' $$binds | awk -F: 'NF && !seen[$$2]++ { printf "-v %s:ro ", $$0 }'); \
	for svc in $(IMAGE_SERVICES); do \
		tag='$(IMAGE_PREFIX)'$$svc:'$(IMAGE_TAG)'; \
		old=$$(podman image inspect --format '{{.Id}}' "$$tag" 2>/dev/null || true); \
		echo "images: podman build $$tag on $$base"; \
		podman build --isolation chroot --format docker --build-arg PYTHON_IMAGE="$$base" $$mounts \
			--build-arg RUNTIME_LOCK_SHA256="$$(sha256sum $(RUNTIME_LOCK) | cut -c1-64)" \
			-f services/$$svc/Dockerfile -t "$$tag" .; \
		: "the image the tag left, unless another tag holds it (the build stage's layers stay: cache)"; \
		[ -z "$$old" ] || [ "$$old" = "$$(podman image inspect --format '{{.Id}}' "$$tag")" ] \
			|| podman rmi "$$old" >/dev/null 2>&1 || true; \
	done; \
	podman images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' | grep '^$(IMAGE_PREFIX)' || true

# The local cluster (README "Local cluster"): per service 2 web replicas x 2 gunicorn processes
# and 2 workers under supervisord, nginx and HAProxy in front, on the machine's PostgreSQL,
# RabbitMQ and Redis; LOGISTICS_CLUSTER_BASE_PORT (default 7000) moves every port.
.PHONY: cluster cluster-down
cluster: $(STAMP)  ## Start the local cluster (replicas behind nginx and HAProxy) and print its URLs
	$(BIN)/python deploy/local/cluster.py up

cluster-down:  ## Stop the local cluster
	$(BIN)/python deploy/local/cluster.py down

clean:  ## Remove the virtualenv and local data
	rm -rf $(VENV) var
