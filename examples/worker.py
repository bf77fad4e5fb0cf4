"""The example's background jobs: a Celery app whose worker reports to Sentry like the API does.

Run a worker with::

    SENTRY_DSN=... REDIS_URL=redis://127.0.0.1:6379/0 celery -A examples.worker worker -P prefork

The API (``examples/fastapi_app``) enqueues ``send_receipt`` after an order is stored; the job
reads the order from the same database, through the same Redis cache, in the same trace as the
request that enqueued it.
"""

from __future__ import annotations

import json

from celery import Celery

from examples import store
from otel_sentry import init_celery_worker

# Each worker process (each prefork child) initializes otel-sentry from the environment.
init_celery_worker()

app = Celery("example", broker=store.redis_url())
app.conf.update(
    task_default_queue="receipts",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="receipts.send_receipt")
def send_receipt(order_id: int) -> str:
    order = store.cached_order(order_id)
    receipt = f"receipt for order {order['id']}: {order['item']} x{order['quantity']}"
    store.cache().set(
        f"receipt:{order_id}", json.dumps({"order": order_id, "text": receipt}), ex=3600
    )
    return receipt
