# CESAR ops stack. `make up` runs the stack in Docker; `make test` tests it on this machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS ?= never
# uv from PATH, else as a module of the Python that `make install` installs it into.
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
PYTEST_ARGS ?=
# Override files: `make up COMPOSE_FILE=compose.yaml:compose.secure.yaml` (Compose reads
# COMPOSE_FILE itself), or COMPOSE="docker compose -f compose.yaml -f compose.secure.yaml".
COMPOSE ?= docker compose

.PHONY: help install up down logs migrate dev test test-fast test-cockroach lint format verify bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install every package of the workspace from uv.lock into .venv (uv itself too)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --locked

up: ## build and run the whole stack with Docker Compose (creates .env first, with a random REDIS_PASSWORD)
	@./scripts/make-env.sh
	$(COMPOSE) up -d --wait --build

down: ## stop the stack (volumes are kept; `docker compose down -v` removes them)
	$(COMPOSE) down

logs: ## follow the stack's logs
	$(COMPOSE) logs -f --tail=100

migrate: install ## apply migrations to DATABASE_URL / COCKROACH_DB_URL
	$(UV) run cesar-migrate apply

dev: install ## run every service as a local process (on 127.0.0.1) against DATABASE_URL and REDIS_URL
	./scripts/dev.sh

test: install ## the whole suite (starts PostgreSQL and Redis when needed)
	./scripts/install-system-deps.sh
	./scripts/ensure-services.sh
	$(UV) run pytest $(PYTEST_ARGS)

test-cockroach: install ## the whole suite on CockroachDB from compose.test.yaml (needs Docker)
	./scripts/test-cockroach.sh $(PYTEST_ARGS)

test-fast: install ## the suite without slow, e2e, browser and fault tests
	./scripts/install-system-deps.sh
	./scripts/ensure-services.sh
	$(UV) run pytest -m "not slow and not e2e and not browser and not faults" $(PYTEST_ARGS)

lint: install ## ruff and mypy (strict on src/)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy libs/cesar-core/src services/*/src

format: install ## format the code
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

verify: ## check a running stack, one line per item (compose when it runs, else local processes)
	@if $(COMPOSE) ps --status running --services 2>/dev/null | grep -qx api; then \
	  $(COMPOSE) $$(COMPOSE="$(COMPOSE)" ./scripts/compose-files.sh) run --rm --no-deps -e API_URL=http://api:8000 \
	    -e OLLAMA_PROXY_URL=http://ollama-proxy:11435 -e DASHBOARD_URL=http://dashboard:3000 \
	    migrator cesar-verify; \
	else \
	  $(MAKE) --no-print-directory install >/dev/null && $(UV) run cesar-verify; \
	fi

bench: install ## benchmarks; results in bench/results/
	./scripts/install-system-deps.sh
	./scripts/ensure-services.sh
	$(UV) run python -m bench

# --- backups (cesar-backup; docs/operations.md "Backups and restore") ---
.PHONY: backup restore
backup: ## back up the database (CockroachDB: BACKUP INTO BACKUP_URI; PostgreSQL: pg_dump into BACKUP_DIR)
	@if $(COMPOSE) ps --status running --services 2>/dev/null | grep -qx cockroach; then \
	  $(COMPOSE) run --rm --no-deps migrator cesar-backup create; \
	else \
	  $(MAKE) --no-print-directory install >/dev/null && $(UV) run cesar-backup create; \
	fi

restore: ## restore BACKUP=<file|subdirectory|latest> into a new database (TARGET_DATABASE=<name>)
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=<file|subdirectory|latest> [TARGET_DATABASE=<new name>]" >&2; exit 2; }
	@if $(COMPOSE) ps --status running --services 2>/dev/null | grep -qx cockroach; then \
	  $(COMPOSE) run --rm --no-deps migrator cesar-backup restore "$(BACKUP)" $(if $(TARGET_DATABASE),--target-database "$(TARGET_DATABASE)"); \
	else \
	  $(MAKE) --no-print-directory install >/dev/null && $(UV) run cesar-backup restore "$(BACKUP)" $(if $(TARGET_DATABASE),--target-database "$(TARGET_DATABASE)"); \
	fi

clean: ## remove the virtualenv and caches
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
