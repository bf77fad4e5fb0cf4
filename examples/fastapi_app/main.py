"""The example service. Run it with::

    SENTRY_DSN=... uvicorn examples.fastapi_app.main:app

``otel_sentry.init()`` runs before the app is created, so the FastAPI instrumentation wraps it.
"""

from __future__ import annotations

import otel_sentry

otel_sentry.init()

from fastapi import FastAPI, HTTPException  # noqa: E402  (after init, so it gets instrumented)

app = FastAPI(title="otel-sentry example")

_ITEMS = {1: {"id": 1, "name": "widget"}, 2: {"id": 2, "name": "gadget"}}


class CheckoutError(RuntimeError):
    """A domain error the demo raises on purpose."""


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/{item_id}")
def get_item(item_id: int) -> dict[str, object]:
    item = _ITEMS.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="no such item")
    return item


@app.post("/checkout/{item_id}")
def checkout(item_id: int) -> dict[str, object]:
    item = get_item(item_id)
    total = _price(item)
    return {"item": item, "total": total}


def _price(item: dict[str, object]) -> float:
    if item["name"] == "gadget":
        raise CheckoutError(f"price service returned nothing for item {item['id']}")
    return 9.99


@app.post("/ask")
def ask(question: str = "Which gadget should I buy?") -> dict[str, object]:
    """One LLM call (OpenAI's API; ``OPENAI_BASE_URL`` points the demo at a local model)."""
    import openai  # only this route needs it

    client = openai.OpenAI(timeout=10, max_retries=1)  # OPENAI_BASE_URL, OPENAI_API_KEY
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )
    usage = reply.usage
    return {
        "answer": reply.choices[0].message.content,
        "tokens": usage.total_tokens if usage else None,
    }


@app.post("/orders/{item_id}")
def place_order(item_id: int) -> dict[str, object]:
    """Stores the order (SQLite), reads it back through Redis, and enqueues the receipt job."""
    # Imported here: only this route needs SQLAlchemy, Redis and the worker's Celery app.
    from examples import store, worker

    item = get_item(item_id)
    order_id = store.save_order(str(item["name"]), 1)
    order = store.cached_order(order_id)
    job = worker.send_receipt.delay(order_id)
    return {"order": order, "receipt_job": job.id}
