"""A FastAPI service whose requests fail in the three ways ``keep_error_traces`` recognises.

- ``GET /ok``: a child span, no error;
- ``GET /fail``: raises in a child span: the request answers 500 (ERROR status, an exception);
- ``GET /handled``: catches its error and reports it with ``sentry_sdk.capture_exception``,
  answering 200 (only the captured event says it failed).

Configured by environment only (``SENTRY_DSN``, ``SENTRY_TRACES_SAMPLE_RATE``,
``OTEL_SENTRY_KEEP_ERROR_TRACES``), run under uvicorn by tests/integration/test_keep_errors.py.
"""

from __future__ import annotations

import otel_sentry

otel_sentry.init()

import sentry_sdk  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from opentelemetry import trace  # noqa: E402

app = FastAPI()
tracer = trace.get_tracer("keep-errors-app")


class ItemStoreError(RuntimeError):
    """What the failing routes raise."""


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}  # a probe: neither a transaction nor a session (noise rules)


@app.get("/ok")
def ok() -> dict[str, str]:
    with tracer.start_as_current_span("load item"):
        return {"status": "ok"}


@app.get("/fail")
def fail() -> dict[str, str]:
    with tracer.start_as_current_span("load item"):
        raise ItemStoreError("the item store answered nothing")


@app.get("/handled")
def handled() -> dict[str, str]:
    with tracer.start_as_current_span("load item"):
        try:
            raise ItemStoreError("the item store answered nothing; served from cache")
        except ItemStoreError as exc:
            sentry_sdk.capture_exception(exc)
    return {"status": "stale"}
