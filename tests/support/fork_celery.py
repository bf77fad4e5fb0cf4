"""A Celery app that calls ``init()`` at import: in the worker's parent, before the pool forks."""

from __future__ import annotations

import os

import otel_sentry

otel_sentry.init()

from celery import Celery  # noqa: E402  (after init, so it gets instrumented)

_BROKER = os.environ.get("FORK_BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("fork_test", broker=_BROKER, backend=_BROKER)
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="fork.whoami")
def whoami(n: int) -> int:
    otel_sentry.set_tag("worker.pid", str(os.getpid()))
    return os.getpid()
