# The two commands in the README: `make demo` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps node-deps nextjs-deps collector demo test lint format bench clean

setup: $(STAMP)

# Reinstall when the dependency list changes; the venv keeps the project editable.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Servers the integration tests start (Redis, PostgreSQL, ...): installed from Debian if missing.
system-deps:
	bash scripts/system-deps.sh

# npm packages of the cross-language interop tests (tests/interop), reinstalled when
# package-lock.json changes.
node-deps:
	bash scripts/node-deps.sh

# The Next.js front end of the demo (examples/nextjs): npm ci + next build when stale. Without
# Node.js it says so and does nothing; a failed install does not stop the Python part.
nextjs-deps:
	-bash scripts/nextjs-deps.sh

# system-deps: the demo starts redis-server for its cache and its Celery worker's broker.
demo: setup system-deps nextjs-deps
	$(PY) examples/demo.py

# The OpenTelemetry Collector the tests in tests/collector run (collector/builder.yaml, built with
# ocb; needs Go). Cached outside the repository by a hash of the manifest: built once per machine.
collector:
	bash scripts/collector-build.sh

test: setup system-deps node-deps collector
	$(PY) -m pytest

LINTED := otel_sentry tests examples $(wildcard benchmarks)

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy --strict otel_sentry

format: setup
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

bench: setup system-deps
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
