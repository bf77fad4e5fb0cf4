"""The service the soak benchmark loads: otel-sentry from the environment, two routes.

``GET /items/{item_id}`` answers; ``GET /fail`` raises, so errors flow as well as transactions.

``SOAK_BARE=1`` runs it without otel-sentry (the anchor); ``SOAK_SENTRY_SDK=1`` with sentry_sdk
alone and its own FastAPI integration (errors only, no tracing: the error-capture anchor);
``SOAK_SDK_CAPTURE=1`` with otel-sentry but sentry_sdk's own way of building an error event
(source lines read on the request thread, the server's log line of an already captured error
built again and dropped), for ``benchmarks/error_capture.py``.
"""

from __future__ import annotations

import logging
import os

import otel_sentry

if os.environ.get("SOAK_SENTRY_SDK") == "1":
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], traces_sample_rate=None)
elif os.environ.get("SOAK_BARE") != "1":  # the anchor runs the same app without otel-sentry
    otel_sentry.init()
    if os.environ.get("SOAK_SDK_CAPTURE") == "1":
        import sentry_sdk

        client = sentry_sdk.get_client()
        client.options["include_source_context"] = True
        client.transport.source_context = False  # type: ignore[union-attr]
        handler = getattr(client.get_integration("logging"), "_handler", None)
        if isinstance(handler, logging.Handler):
            handler.filters.clear()

from fastapi import FastAPI  # after init(), so the instrumentation wraps it

app = FastAPI(title="otel-sentry soak")


class SoakError(RuntimeError):
    """Raised on purpose by /fail."""


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, object]:
    return {"item_id": item_id, "name": f"item {item_id}", "tags": ["a", "b"]}


@app.get("/fail")
async def fail() -> dict[str, object]:
    raise SoakError("the soak benchmark's deliberate error")
