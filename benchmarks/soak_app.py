"""The service the soak benchmark loads: otel-sentry from the environment, two routes.

``GET /items/{item_id}`` answers; ``GET /fail`` raises, so errors flow as well as transactions.
"""

from __future__ import annotations

import os

import otel_sentry

if os.environ.get("SOAK_BARE") != "1":  # the anchor runs the same app without otel-sentry
    otel_sentry.init()

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
