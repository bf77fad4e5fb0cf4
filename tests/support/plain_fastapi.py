"""A FastAPI app with no otel-sentry code at all: only ``opentelemetry-instrument`` sets it up."""

from __future__ import annotations

import os

from fastapi import FastAPI

app = FastAPI()


class CheckoutError(RuntimeError):
    pass


@app.get("/items/{item_id}")
def get_item(item_id: int) -> dict[str, int]:
    return {"id": item_id, "pid": os.getpid()}


@app.post("/checkout/{item_id}")
def checkout(item_id: int) -> None:
    raise CheckoutError(f"price service returned nothing for item {item_id}")
