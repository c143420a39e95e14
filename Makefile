# AidMesh: the front door. `make up` runs the platform and a demo; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
# Kafka passwords of the local principals (deploy/local and `aidmesh infra bootstrap` write
# them; never in the repo). Tools and tests connect as the operator `admin`, services as
# themselves (ADR 0011).
export AIDMESH_KAFKA_SECRETS_DIR ?= $(CURDIR)/var/secrets/kafka
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(PYTHON) -m uv
VENV := .venv
PY := $(VENV)/bin/python
AIDMESH := $(VENV)/bin/aidmesh
PYTEST := $(PY) -m pytest

# Two copies of a service on the same topics would both react to the tests' (or the
# benchmarks') events: the make up services stop first, and make up starts them again.
STOP_LOCAL_SERVICES = if bash deploy/local/services.sh status >/dev/null 2>&1 || pgrep -f 'python -m aidmesh_' >/dev/null; then \
	  echo "==> stopping the local services (make up) so the tests own the topics; make up starts them again"; \
	  bash deploy/local/services.sh stop; fi
# Their traffic was not for the make up services: move those groups past it.
SKIP_TEST_TRAFFIC = mkdir -p var/logs; $(AIDMESH) infra skip-test-traffic >var/logs/skip-test-traffic.log 2>&1 || true

.PHONY: help install infra-up infra-down infra-status bootstrap services-up services-down \
        services-status up down demo test test-unit test-integration test-e2e lint format \
        schemas logs clean bench dist

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml
	@$(PYTHON) -m uv --version 2>/dev/null | grep -q "$(UV_VERSION)" || { \
	  echo "==> installing uv $(UV_VERSION)"; \
	  $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet --disable-pip-version-check --user --break-system-packages "uv==$(UV_VERSION)"; }
	@echo "==> python packages (uv sync --frozen)"
	@$(UV) sync --frozen --all-packages --python $(PYTHON) --quiet
	@touch $@

install: $(VENV)/.installed ## Install uv and the locked Python packages

infra-up: install ## Start PostgreSQL, Kafka, Jaeger and Prometheus (installing them if missing), create topics and databases
	@bash deploy/local/infra.sh up
	@$(AIDMESH) infra bootstrap

bootstrap: install ## Create the catalogue's topics and the services' databases
	@$(AIDMESH) infra bootstrap

infra-down: ## Stop Prometheus, Jaeger, Kafka and PostgreSQL (state kept in var/)
	@bash deploy/local/infra.sh down

infra-status: ## Are PostgreSQL, Kafka, Jaeger and Prometheus running?
	@bash deploy/local/infra.sh status

services-up: infra-up ## Start the services in the background and wait until ready
	@bash deploy/local/services.sh start

services-down: ## Stop the services gracefully
	@bash deploy/local/services.sh stop

services-status: ## Are the services running?
	@bash deploy/local/services.sh status

up: services-up ## Install, start everything, run the demo (services stay up until make down)
	@$(AIDMESH) demo
	@echo
	@echo "AidMesh is running. Logs: var/logs/<service>.log   APIs: http://127.0.0.1:8101/docs (registration), :8102 (shelter), :8103 (health), :8105 (audit)"
	@echo "API tokens: .venv/bin/aidmesh token issue --sub user:me --org IOM --scope registration:read (README, Security: HTTP)"
	@echo "Traces:  http://127.0.0.1:$${AIDMESH_JAEGER_UI_PORT:-16686} (Jaeger; one trace per registration across every service; see README, Tracing)"
	@echo "Metrics: http://127.0.0.1:$${AIDMESH_PROMETHEUS_PORT:-9090} (Prometheus; every service at /metrics; dashboard deploy/grafana/aidmesh-dashboard.json)"
	@echo "Run the demo again: make demo    Watch a topic: see README    Stop: make down"

demo: install ## Run the demo scenario against the running services
	@$(AIDMESH) demo

down: ## Stop services, Prometheus, Jaeger, Kafka and PostgreSQL
	@bash deploy/local/services.sh stop
	@bash deploy/local/infra.sh down

test: install ## Every test: unit, integration (real Kafka + PostgreSQL), end-to-end
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory infra-up
	@bash deploy/local/chromium.sh ensure
	@$(STOP_LOCAL_SERVICES)
	@# The tests' traffic is not for the make up services: move their groups past it first
	@# (quietly: pytest's summary stays the last line), so the next make up does not replay it.
	@status=0; $(PYTEST) contracts/tests runtime/tests ops/tests services tests || status=$$?; \
	  $(SKIP_TEST_TRAFFIC); exit $$status

test-unit: install ## Unit tests only (no infrastructure)
	@$(PYTEST) -m "not integration and not e2e" contracts/tests runtime/tests ops/tests services

lint: install ## ruff, mypy (strict: contracts, runtime), import contracts, generated files current, no breaking contract change, no secret in the repo
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports
	@$(PY) -m aidmesh_contracts.schemas check
	@$(PY) -m aidmesh_contracts.compat
	@$(PY) -m aidmesh_contracts.asyncapi check
	@$(PY) -m aidmesh_ops.k8s check
	@$(PY) -m aidmesh_ops.secret_scan

format: install ## Format and auto-fix
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

schemas: install ## Regenerate what is generated from the contracts: JSON Schemas, AsyncAPI, its HTML page, k8s topics
	@$(PY) -m aidmesh_contracts.schemas write
	@$(PY) -m aidmesh_contracts.asyncapi write
	@$(PY) -m aidmesh_ops.k8s write

dist: install ## Build the contracts wheel and sdist and the integrators' HTML reference into dist/
	@rm -rf dist && $(UV) build --package aidmesh-contracts --out-dir dist
	@cp contracts/asyncapi.yaml docs/contracts/index.html contracts/CHANGELOG.md dist/
	@ls -1 dist

bench: infra-up ## Benchmarks (not part of make test): bench/results/<date>.json, .md and .png (BENCH=<name> for one)
	@$(STOP_LOCAL_SERVICES)
	@status=0; $(PY) bench/run.py $(BENCH) || status=$$?; $(SKIP_TEST_TRAFFIC); exit $$status

logs: ## Follow the services' logs
	@tail -F var/logs/*.log

clean: down ## Stop everything and delete local state (Kafka data, databases, logs)
	@rm -rf var
