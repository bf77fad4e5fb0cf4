"""The Celery app of the jobs integration test, run by a real worker (``celery -A ... worker``).

Its task runs SQL and Redis cache calls and fails on its first attempt, then succeeds on the
retry. Everything comes from the environment the test gives the worker: the broker
(``JOBS_BROKER_URL``), the database (``JOBS_DATABASE_URL``) and otel-sentry's own variables
(``SENTRY_DSN``, ``OTEL_SENTRY_CACHE_PREFIXES``...).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from otel_sentry._internal.celery_worker import init_celery_worker

init_celery_worker(environment="test", release="jobs@1")

app = Celery("jobs_test", broker=os.environ.get("JOBS_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue="jobs",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


class TransientError(RuntimeError):
    """What the first attempt of every job raises."""


_engine: Any = None


def _database() -> Any:
    # Created in the worker child, after init(): the SQLAlchemy instrumentation wraps engines
    # created once it is on.
    global _engine
    if _engine is None:
        import sqlalchemy

        _engine = sqlalchemy.create_engine(os.environ["JOBS_DATABASE_URL"])
    return _engine


@app.task(
    bind=True,
    name="jobs.recompute_profile",
    autoretry_for=(TransientError,),
    max_retries=2,
    default_retry_delay=0,
)
def recompute_profile(self: Any, user_id: int) -> int:
    import redis
    import sqlalchemy

    with _database().connect() as conn:
        total = conn.execute(
            sqlalchemy.text("SELECT :user_id + 41 AS total, 'recompute' AS reason"),
            {"user_id": user_id},
        ).scalar()
    cache = redis.Redis.from_url(os.environ["JOBS_BROKER_URL"])
    key = f"profile:{user_id}"
    if cache.get(key) is None:
        cache.set(key, str(total))
    if self.request.retries == 0:
        raise TransientError(f"profile store busy for user {user_id}")
    return int(total)


class PermanentError(RuntimeError):
    """What every attempt of ``jobs.reject_profile`` raises."""


@app.task(name="jobs.reject_profile")
def reject_profile(user_id: int) -> None:
    raise PermanentError(f"profile {user_id} is locked")


class VendorRejectedError(RuntimeError):
    """What ``jobs.charge_vendor`` raises: its message carries the key it was given."""


@app.task(name="jobs.charge_vendor")
def charge_vendor(order_id: int, api_key: str, note: str = "") -> None:
    # The privacy canary test passes secrets as arguments: they are this frame's locals, the
    # locals of Celery's own frames (args, kwargs, the request) and part of the message.
    vendor_secret = api_key
    attempt = {"order": order_id, "note": note, "vendor_secret": vendor_secret}
    raise VendorRejectedError(f"vendor rejected api_key={api_key} for order {order_id}: {attempt}")
