"""The example's data: orders in SQLite (through SQLAlchemy), read through a Redis cache.

Shared by the API and the worker, which point at the same database with ``DEMO_DATABASE_URL``
(default: a file in the system's temporary directory) and the same Redis with ``REDIS_URL``
(default ``redis://127.0.0.1:6379/0``).
The engine is created on first use, after ``otel_sentry.init()``, so the SQLAlchemy
instrumentation traces it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

_engine: sqlalchemy.Engine | None = None
_cache: redis.Redis | None = None
_lock = threading.Lock()


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def cache() -> redis.Redis:
    """One client (and connection pool) per process."""
    global _cache
    with _lock:
        if _cache is None:
            _cache = redis.Redis.from_url(redis_url())
        return _cache


def engine() -> sqlalchemy.Engine:
    global _engine
    with _lock:
        if _engine is None:
            default = f"sqlite:///{Path(tempfile.gettempdir()) / 'otel-sentry-demo.db'}"
            _engine = sqlalchemy.create_engine(os.environ.get("DEMO_DATABASE_URL", default))
            with _engine.begin() as conn:
                conn.execute(
                    sqlalchemy.text(
                        "CREATE TABLE IF NOT EXISTS orders ("
                        "id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT, quantity INTEGER)"
                    )
                )
        return _engine


def save_order(item: str, quantity: int) -> int:
    with engine().begin() as conn:
        result = conn.execute(
            sqlalchemy.text("INSERT INTO orders (item, quantity) VALUES (:item, :quantity)"),
            {"item": item, "quantity": quantity},
        )
        return int(result.lastrowid or 0)


def cached_order(order_id: int) -> dict[str, Any]:
    """The order, from the cache when it is there, else from the database (then cached)."""
    key = f"order:{order_id}"
    hit = cache().get(key)
    if hit is not None:
        return dict(json.loads(hit))
    with engine().connect() as conn:
        row = conn.execute(
            sqlalchemy.text("SELECT id, item, quantity FROM orders WHERE id = :id"),
            {"id": order_id},
        ).one()
    order = {"id": row.id, "item": row.item, "quantity": row.quantity}
    cache().set(key, json.dumps(order), ex=3600)
    return order
