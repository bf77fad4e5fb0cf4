"""The Python service of the interop tests, run by uvicorn in its own process::

    SENTRY_DSN=... python -m uvicorn tests.interop.fastapi_service:app --port 8000

It is what a user writes: ``otel_sentry.init()`` first, then a FastAPI app. Every route answers
with the trace headers that reached it, so a test can compare what the JavaScript side sent,
what arrived here and what Sentry received.

- ``GET /echo``: the trace headers of this request.
- ``GET /call-node?url=...``: calls another service with httpx and returns its answer, so the
  test sees which headers this service sent downstream.

Browsers send ``sentry-trace``, ``baggage`` and ``traceparent`` cross-origin only when the API
allows them: ``allow_trace_headers`` is the README's way to do that, for the origins in
``INTEROP_ALLOW_ORIGINS`` (comma-separated).
"""

from __future__ import annotations

import os

import otel_sentry

otel_sentry.init(instrument=("fastapi", "httpx"))

import httpx  # noqa: E402  (after init, so it gets instrumented)
from fastapi import FastAPI, Request  # noqa: E402

from otel_sentry._internal.instrument.web import allow_trace_headers  # noqa: E402

TRACE_HEADERS = ("sentry-trace", "baggage", "traceparent", "tracestate")

app = FastAPI(title="otel-sentry interop service")
allow_trace_headers(
    app, origins=[o for o in os.environ.get("INTEROP_ALLOW_ORIGINS", "").split(",") if o]
)


def _trace_headers(request: Request) -> dict[str, str]:
    return {name: request.headers[name] for name in TRACE_HEADERS if name in request.headers}


@app.get("/echo")
def echo(request: Request) -> dict[str, object]:
    return {"service": "python", "received": _trace_headers(request)}


@app.get("/call-node")
def call_node(request: Request, url: str) -> dict[str, object]:
    with httpx.Client(timeout=10) as client:
        downstream = client.get(url)
    return {
        "service": "python",
        "received": _trace_headers(request),
        "downstream_status": downstream.status_code,
        "downstream": downstream.json(),
    }
