"""The FastAPI app under test: one JSON route with a path parameter, like a typical API call.

Instrumentations patch FastAPI when they are enabled, so the app is built by :func:`create_app`
only after a setup has configured the process::

    setups.SETUPS["otel_sdk"](options)
    app = create_app()
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROUTE", "create_app", "request_path"]

ROUTE = "/items/{item_id}"


def request_path(item_id: int) -> str:
    return f"/items/{item_id}"


def create_app() -> Any:
    """A fresh app; imported lazily so that a setup's patches of FastAPI are in place first."""
    from fastapi import FastAPI

    app = FastAPI(title="otel-sentry benchmark")

    @app.get(ROUTE)
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "name": f"item {item_id}", "q": q, "tags": ["a", "b"]}

    return app
