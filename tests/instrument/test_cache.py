"""Redis as a cache against a real redis-server: cache spans as they reach the inbox.

A miss, a write, a hit and a delete on keys under a configured prefix become ``cache.get``
(hit false), ``cache.put``, ``cache.get`` (hit true) and ``cache.remove`` spans with the key and
item size, each with the ``db.redis`` command span beneath it; keys outside the prefixes give
command spans only. Sync and asyncio clients alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.instrument.cache import uninstrument_redis_cache
from otel_sentry.inbox import Inbox
from tests.support.servers import RedisServer

VALUE = b'{"id": 1, "name": "widget"}'


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def traced(inbox: Inbox, fresh: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    # The environment variable, as a deployment would set it.
    monkeypatch.setenv("OTEL_SENTRY_CACHE_PREFIXES", "cache:, page:")
    otel_sentry.init(dsn=inbox.dsn(), export="both", instrument=("redis",))
    yield inbox
    uninstrument_redis_cache()


def _transaction(inbox: Inbox, name: str) -> dict[str, Any]:
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: any(t["transaction"] == name for t in i.transactions()), 10)
    [txn] = [t for t in inbox.transactions() if t["transaction"] == name]
    assert inbox.problems == []
    return txn


def _check_cache_sequence(txn: dict[str, Any], key: str) -> None:
    spans = txn["spans"]
    cache = [s for s in spans if s["op"].startswith("cache.")]
    assert [(s["op"], s["description"]) for s in cache] == [
        ("cache.get", key),
        ("cache.put", key),
        ("cache.get", key),
        ("cache.remove", key),
    ]
    miss, put, hit, remove = cache
    assert "cache.hit" not in remove["data"]
    assert miss["data"]["cache.hit"] is False
    assert "cache.item_size" not in miss["data"]
    assert hit["data"]["cache.hit"] is True
    assert hit["data"]["cache.item_size"] == len(VALUE)
    assert put["data"]["cache.item_size"] == len(VALUE)
    assert "cache.hit" not in put["data"]
    for span in cache:
        assert span["data"]["cache.key"] == [key]
        assert span["data"]["network.peer.address"] == "127.0.0.1"
        children = [s for s in spans if s.get("parent_span_id") == span["span_id"]]
        assert [c["op"] for c in children] == ["db.redis"], children
    # Keys outside the prefixes: the command span, no cache span.
    other = [
        s
        for s in spans
        if s["op"] == "db.redis" and s["parent_span_id"] not in {c["span_id"] for c in cache}
    ]
    assert [s["description"] for s in other] == ["GET ?"]


def test_sync_client_miss_put_hit_remove(traced: Inbox, redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    with trace.get_tracer("tests").start_as_current_span("sync-cache"):
        assert client.get("cache:item:1") is None
        client.set("cache:item:1", VALUE, ex=60)
        assert client.get("cache:item:1") == VALUE
        client.delete("cache:item:1")
        client.get("queue:other")
    client.close()
    _check_cache_sequence(_transaction(traced, "sync-cache"), "cache:item:1")

    otel_sentry.flush(5)
    otlp = [s for s in traced.otlp_spans() if s["name"].startswith("cache.")]
    assert [(s["name"], s["attributes"].get("cache.hit")) for s in otlp] == [
        ("cache.get", False),
        ("cache.put", None),
        ("cache.get", True),
        ("cache.remove", None),
    ]
    assert all(s["attributes"]["cache.key"] == ["cache:item:1"] for s in otlp)


def test_asyncio_client(traced: Inbox, redis_server: RedisServer) -> None:
    import redis.asyncio

    async def work() -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        with trace.get_tracer("tests").start_as_current_span("async-cache"):
            assert await client.get("page:abc") is None
            await client.execute_command("SETEX", "page:abc", 60, VALUE)
            assert await client.get("page:abc") == VALUE
            await client.unlink("page:abc")
            await client.get("queue:other")
        await client.aclose()

    asyncio.run(work())
    _check_cache_sequence(_transaction(traced, "async-cache"), "page:abc")


def test_multi_key_reads_hit_only_when_every_key_is_found(
    traced: Inbox, redis_server: RedisServer
) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    with trace.get_tracer("tests").start_as_current_span("mget"):
        client.mset({"cache:a": "1", "cache:b": "22"})
        client.mget("cache:a", "cache:b")
        client.mget("cache:a", "cache:missing")
        client.delete("cache:a", "cache:b")
    client.close()
    txn = _transaction(traced, "mget")
    cache = [s for s in txn["spans"] if s["op"].startswith("cache.")]
    assert [(s["op"], s["description"]) for s in cache] == [
        ("cache.put", "cache:a, cache:b"),
        ("cache.get", "cache:a, cache:b"),
        ("cache.get", "cache:a, cache:missing"),
        ("cache.remove", "cache:a, cache:b"),
    ]
    put, full, partial, _ = cache
    assert put["data"]["cache.item_size"] == 3
    assert full["data"]["cache.hit"] is True and full["data"]["cache.item_size"] == 3
    assert partial["data"]["cache.hit"] is False and partial["data"]["cache.item_size"] == 1


def test_no_prefixes_no_cache_spans(inbox: Inbox, fresh: None, redis_server: RedisServer) -> None:
    import redis

    otel_sentry.init(dsn=inbox.dsn(), instrument=("redis",))
    uninstrument_redis_cache()  # whatever an earlier test left
    client = redis.Redis.from_url(redis_server.url)
    with trace.get_tracer("tests").start_as_current_span("plain"):
        client.set("cache:x", b"1")
        client.get("cache:x")
    client.close()
    txn = _transaction(inbox, "plain")
    assert sorted(s["op"] for s in txn["spans"]) == ["db.redis", "db.redis"]
