# PrefHub: two commands matter.
#   make run    start the platform (SQLite + a real Celery worker on an embedded broker), seeded with a demo
#   make test   run the whole test suite (PostgreSQL + Redis + Chromium when present, installed/started if down)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements/base.txt | sha1sum | cut -c1-12)
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
ADDR ?= 127.0.0.1:8000

.PHONY: run test venv lint envs bench

$(STAMP): requirements.txt requirements-dev.txt requirements/base.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py seed_demo --addr $(ADDR)
	@if $(BIN)/python manage.py help create_tiny_model >/dev/null 2>&1; then \
		$(BIN)/python manage.py create_tiny_model var/models/tiny-demo --register-endpoint tiny-demo --keep-existing; fi
	$(BIN)/python manage.py run_platform --addr $(ADDR)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

# Every environment file (web, dev, gpu-train, generation, vllm-serve) resolves with pip --dry-run
# against the index, from wheel metadata (no multi-GB download). PREFHUB_SKIP_ENV_RESOLVE=1 skips it.
envs: venv
	$(BIN)/python scripts/check_envs.py

test: venv
	bash scripts/ensure-system.sh
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory envs
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "== tests on PostgreSQL ($(PG_URL))"; \
		DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else \
		echo "== PostgreSQL not reachable: tests on SQLite (PostgreSQL-only tests skip)"; \
		OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

bench: venv
	@echo "See bench/*.py; each prints its figures, e.g. DATABASE_URL=$(PG_URL) $(BIN)/python bench/claim_submit.py"
