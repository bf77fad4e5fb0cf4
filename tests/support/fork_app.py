"""A FastAPI app that calls ``init()`` at import: with ``gunicorn --preload``, before the fork."""

from __future__ import annotations

import os

import otel_sentry

otel_sentry.init()

from fastapi import FastAPI  # noqa: E402  (after init, so it gets instrumented)

app = FastAPI()


@app.get("/items/{item_id}")
def get_item(item_id: int) -> dict[str, int]:
    otel_sentry.set_tag("worker.pid", str(os.getpid()))
    return {"id": item_id, "pid": os.getpid()}
