"""One FastAPI request that calls httpx, SQL and Redis -> one transaction in the inbox.

Real parts only: uvicorn serving the app on 127.0.0.1, a real redis-server, SQLite through
SQLAlchemy, httpx calling a real local HTTP server, and the official OTel instrumentations
enabled by ``otel_sentry.init()``. The requests come from urllib, which is not instrumented, so
the server span is the local root as it would be behind a load balancer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.support.servers import RedisServer
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration


@pytest.fixture
def service(
    inbox: Inbox, redis_server: RedisServer, fresh: None, tmp_path: Path
) -> Iterator[UvicornThread]:
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="bridge@1",
        instrument=("fastapi", "httpx", "sqlalchemy", "redis"),
    )
    import httpx
    import redis
    import sqlalchemy
    from fastapi import FastAPI

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'items.db'}")
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(sqlalchemy.text("INSERT INTO items VALUES (1, 'widget')"))
    cache = redis.Redis.from_url(redis_server.url)
    app = FastAPI()

    @app.get("/items/{item_id}")
    def get_item(item_id: int) -> dict[str, Any]:
        cached = cache.get(f"item:{item_id}")
        with engine.connect() as conn:
            row = conn.execute(
                sqlalchemy.text("SELECT id, name FROM items WHERE id = :id"), {"id": item_id}
            ).one()
        cache.set(f"item:{item_id}", json.dumps({"id": row.id, "name": row.name}))
        upstream = httpx.get(f"{inbox.url}/api/_inbox/health?token=shh", timeout=5)
        return {"id": row.id, "cached": cached is not None, "upstream": upstream.status_code}

    @app.get("/fail/{item_id}")
    def fail(item_id: int) -> None:
        raise RuntimeError(f"failure for {item_id}")

    with UvicornThread(app) as server:
        yield server


def _only_transaction(inbox: Inbox, name: str) -> dict[str, Any]:
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: any(t["transaction"] == name for t in i.transactions()), 10)
    found = [t for t in inbox.transactions() if t["transaction"] == name]
    assert len(found) == 1, [t["transaction"] for t in inbox.transactions()]
    return found[0]


def test_request_with_httpx_sql_and_redis_is_one_transaction(
    service: UvicornThread, inbox: Inbox
) -> None:
    assert service.request("GET", "/items/1") == 200
    txn = _only_transaction(inbox, "GET /items/{item_id}")
    trace = txn["contexts"]["trace"]
    assert trace["op"] == "http.server"
    assert trace["status"] == "ok"
    assert txn["transaction_info"]["source"] == "route"
    assert "parent_span_id" not in trace
    by_op: dict[str, list[dict[str, Any]]] = {}
    for span in txn["spans"]:
        assert span["trace_id"] == trace["trace_id"]
        by_op.setdefault(span["op"], []).append(span)
    queries = [s["description"] for s in by_op["db"] if s["description"] != "connect"]
    assert queries == ["SELECT id, name FROM items WHERE id = ?"]
    assert sorted(s["description"] for s in by_op["db.redis"]) == ["GET ?", "SET ? ?"]
    [client] = by_op["http.client"]
    assert client["description"] == f"GET {inbox.url}/api/_inbox/health"  # no query string
    assert client["status"] == "ok"
    span_ids = {trace["span_id"]} | {s["span_id"] for s in txn["spans"]}
    assert all(s["parent_span_id"] in span_ids for s in txn["spans"])
    assert txn["release"] == "bridge@1" and txn["environment"] == "test"
    [envelope] = [
        e for e in inbox.envelopes if e.envelope.headers.get("event_id") == txn["event_id"]
    ]
    dsc = envelope.envelope.headers["trace"]
    assert dsc["trace_id"] == trace["trace_id"]
    assert dsc["sample_rate"] == "1" and dsc["sampled"] == "true"
    assert dsc["transaction"] == "GET /items/{item_id}"
    assert inbox.problems == []


def test_a_500_is_one_issue_linked_to_the_server_span(service: UvicornThread, inbox: Inbox) -> None:
    assert service.request("GET", "/fail/7") == 500
    txn = _only_transaction(inbox, "GET /fail/{item_id}")
    assert txn["contexts"]["trace"]["status"] == "internal_error"
    inbox.wait_for_items("event")
    otel_sentry.flush(5)
    errors = [e for e in inbox.events() if e.get("exception")]
    assert len(errors) == 1, errors  # the exception recorded on the span is not a second issue
    error = errors[0]
    assert error["exception"]["values"][-1]["type"] == "RuntimeError"
    assert error["contexts"]["trace"]["trace_id"] == txn["contexts"]["trace"]["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == txn["contexts"]["trace"]["span_id"]
    assert error["contexts"]["trace"]["op"] == "http.server"
    [envelope] = [
        e for e in inbox.envelopes if e.envelope.headers.get("event_id") == error["event_id"]
    ]
    assert envelope.envelope.headers["trace"]["trace_id"] == txn["contexts"]["trace"]["trace_id"]
    assert inbox.problems == []
