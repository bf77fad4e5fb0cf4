# The two commands in the README: `make demo` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup old-fastapi system-deps node-deps nextjs-deps collector demo test py-matrix lint format bench clean

setup: $(STAMP)

# Reinstall when the dependency list changes; the venv keeps the project editable. Every
# published extra ([all]) plus the development group (pyproject's [dependency-groups]; pip >=
# 25.1 reads them, hence the upgrade first).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=25.1'
	$(PY) -m pip install --quiet -e '.[all]' --group dev
	# arq without its redis<6 pin, beside Celery's redis>=6.4 (pyproject.toml, the arq extra)
	$(PY) -m pip install --quiet --no-deps 'arq>=0.28'
	touch $(STAMP)

# A FastAPI from before its own telemetry (0.165), with the Starlette it ran on, for the tests of
# the fallback to the contrib instrumentation (tests/integration/test_fastapi_native.py). Installed
# beside .venv, not into it: only a process started with it on PYTHONPATH sees it.
OLD_FASTAPI := $(VENV)/old-fastapi
old-fastapi: $(OLD_FASTAPI)/.installed

$(OLD_FASTAPI)/.installed: $(STAMP)
	rm -rf $(OLD_FASTAPI)
	$(PY) -m pip install --quiet --no-deps --target $(OLD_FASTAPI) 'fastapi==0.115.14' 'starlette==0.46.2'
	touch $@

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

# The OpenTelemetry Collector the tests in tests/collector run (otel_sentry/collector/builder.yaml,
# built with ocb; needs Go). Cached outside the repository by a hash of the manifest: built once
# per machine.
collector:
	bash scripts/collector-build.sh

test: setup old-fastapi system-deps node-deps collector
	$(PY) -m pytest

# The unit-level tests (no servers) on the other Pythons the package claims (3.10, 3.12, 3.13),
# each in a venv of its own under .venv/matrix/; the whole suite runs on .venv's Python (`test`).
# A version without an interpreter fails it.
py-matrix:
	bash scripts/py-matrix.sh

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
