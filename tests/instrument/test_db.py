"""Database spans against a real PostgreSQL and sqlite3, as they reach the inbox.

Each test runs statements with literal values written into the SQL inside one root span, then
reads the transaction (Sentry's side) and the OTLP spans (any other backend's side) that
``init(export="both")`` delivered: op ``db``, a parameterized description *and* attribute,
``db.system``, the server address, exactly one span per statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.instrument.db import SLOW_QUERY_ATTRIBUTE
from otel_sentry.inbox import Inbox
from tests.support.servers import PostgresServer

SECRET = "s3cret-literal"
NUMBER = "424242"


@pytest.fixture
def traced(inbox: Inbox, fresh: None) -> Iterator[Inbox]:
    otel_sentry.init(
        dsn=inbox.dsn(),
        export="both",
        instrument=("sqlalchemy", "asyncpg", "psycopg", "sqlite3"),
        db_slow_query_ms=150,
    )
    yield inbox


def _run(name: str, work: Callable[[], Any]) -> None:
    with trace.get_tracer("tests").start_as_current_span(name):
        work()


def _db_spans(inbox: Inbox, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The transaction's ``db`` spans and the OTLP spans of the same trace."""
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: any(t["transaction"] == name for t in i.transactions()), 10)
    [txn] = [t for t in inbox.transactions() if t["transaction"] == name]
    trace_id = txn["contexts"]["trace"]["trace_id"]
    spans = [s for s in txn["spans"] if s["op"] == "db" and s["description"] != "connect"]
    assert inbox.wait_for(
        lambda i: any(s["trace_id"] == trace_id and s["name"] == name for s in i.otlp_spans()),
        10,
    )
    otlp = [s for s in inbox.otlp_spans() if s["trace_id"] == trace_id and s["name"] != name]
    assert inbox.problems == []
    return spans, otlp


def _assert_no_literals(spans: list[dict[str, Any]], otlp: list[dict[str, Any]]) -> None:
    for span in spans:
        for text in (span["description"], span["data"].get("db.statement", "")):
            assert SECRET not in text and NUMBER not in text, span
    for span in otlp:
        # What the span says, not its ids and timestamps: NUMBER's digits turn up in those by
        # chance (a start_time_unix_nano of ...77424242500 did).
        said = repr([span[k] for k in ("name", "attributes", "events", "links", "status_message")])
        assert SECRET not in said and NUMBER not in said, span


def _pg(spans: list[dict[str, Any]], postgres: PostgresServer) -> None:
    for span in spans:
        assert span["data"]["db.system"] == "postgresql"
        assert span["data"]["server.address"] == "127.0.0.1"
        assert span["data"]["server.port"] == postgres.port


def test_sqlalchemy_sync_over_psycopg(traced: Inbox, postgres: PostgresServer) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres.url.replace("postgresql:", "postgresql+psycopg:"))

    def work() -> None:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE IF NOT EXISTS sa_items (id int, name text)"))
            conn.execute(sqlalchemy.text(f"INSERT INTO sa_items VALUES ({NUMBER}, '{SECRET}')"))
            conn.execute(sqlalchemy.text("SELECT name FROM sa_items WHERE id = :id"), {"id": 1})

    _run("sqlalchemy-sync", work)
    engine.dispose()
    spans, otlp = _db_spans(traced, "sqlalchemy-sync")
    statements = [s["description"] for s in spans if s["description"] not in ("BEGIN", "COMMIT")]
    # One span per statement: psycopg's own span under SQLAlchemy's is not recorded.
    assert statements == [
        "CREATE TABLE IF NOT EXISTS sa_items (id int, name text)",
        "INSERT INTO sa_items VALUES (%s)",  # a list of literals collapses to one %s
        "SELECT name FROM sa_items WHERE id = %(id)s",
    ]
    assert spans[1]["data"]["db.statement"] == "INSERT INTO sa_items VALUES (%s)"
    _pg(spans, postgres)
    _assert_no_literals(spans, otlp)
    otlp_statements = [s["attributes"].get("db.statement") for s in otlp]
    assert otlp_statements.count("INSERT INTO sa_items VALUES (%s)") == 1


def test_sqlalchemy_async_over_asyncpg(traced: Inbox, postgres: PostgresServer) -> None:
    import sqlalchemy
    from sqlalchemy.ext.asyncio import create_async_engine

    async def work() -> None:
        engine = create_async_engine(postgres.url.replace("postgresql:", "postgresql+asyncpg:"))
        with trace.get_tracer("tests").start_as_current_span("sqlalchemy-async"):
            async with engine.begin() as conn:
                await conn.execute(sqlalchemy.text(f"SELECT '{SECRET}' AS v, {NUMBER} AS n"))
        await engine.dispose()

    asyncio.run(work())
    spans, otlp = _db_spans(traced, "sqlalchemy-async")
    selects = [s["description"] for s in spans if s["description"].startswith("SELECT")]
    assert selects == ["SELECT %s AS v, %s AS n"]  # once: asyncpg's own span is not recorded
    _pg(spans, postgres)
    _assert_no_literals(spans, otlp)


def test_asyncpg_directly(traced: Inbox, postgres: PostgresServer) -> None:
    import asyncpg

    async def work() -> None:
        with trace.get_tracer("tests").start_as_current_span("asyncpg"):
            conn = await asyncpg.connect(postgres.url)
            try:
                await conn.fetch(f"SELECT '{SECRET}'::text AS v WHERE {NUMBER} > $1", 1)
            finally:
                await conn.close()

    asyncio.run(work())
    spans, otlp = _db_spans(traced, "asyncpg")
    assert [s["description"] for s in spans] == ["SELECT %s::text AS v WHERE %s > $1"]
    assert spans[0]["data"]["db.system"] == "postgresql"
    assert spans[0]["data"]["server.address"] == "127.0.0.1"
    _assert_no_literals(spans, otlp)


def test_psycopg_directly_with_a_slow_query(traced: Inbox, postgres: PostgresServer) -> None:
    import psycopg

    def work() -> None:
        with psycopg.connect(postgres.url) as conn:
            conn.execute(f"SELECT '{SECRET}', {NUMBER}").fetchall()
            conn.execute("SELECT pg_sleep(%s)", (0.3,)).fetchall()

    _run("psycopg", work)
    spans, otlp = _db_spans(traced, "psycopg")
    by_description = {s["description"]: s for s in spans}
    fast = by_description["SELECT %s, %s"]
    slow = by_description["SELECT pg_sleep(%s)"]
    assert SLOW_QUERY_ATTRIBUTE not in fast["data"]
    assert slow["data"][SLOW_QUERY_ATTRIBUTE] is True
    _pg([fast, slow], postgres)
    _assert_no_literals(spans, otlp)
    assert any(s["attributes"].get(SLOW_QUERY_ATTRIBUTE) is True for s in otlp)


def test_sqlite3(traced: Inbox) -> None:
    def work() -> None:
        conn = sqlite3.connect(":memory:")
        # Cursors: the contrib instrumentation does not trace the Connection.execute shortcut.
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        cursor.execute(f"INSERT INTO t VALUES ({NUMBER}, '{SECRET}')")
        cursor.execute("SELECT name FROM t WHERE id = ?", (1,)).fetchall()
        conn.close()

    _run("sqlite3", work)
    spans, otlp = _db_spans(traced, "sqlite3")
    assert [s["description"] for s in spans] == [
        "CREATE TABLE t (id INTEGER, name TEXT)",
        "INSERT INTO t VALUES (%s)",
        "SELECT name FROM t WHERE id = ?",
    ]
    assert {s["data"]["db.system"] for s in spans} == {"sqlite"}
    _assert_no_literals(spans, otlp)


def test_a_bad_slow_query_threshold_names_the_variable_and_the_fix() -> None:
    from otel_sentry._internal.config import ConfigError, resolve

    with pytest.raises(ConfigError) as raised:
        resolve({}, {"OTEL_SENTRY_DB_SLOW_QUERY_MS": "fast"})
    assert "OTEL_SENTRY_DB_SLOW_QUERY_MS='fast'" in str(raised.value)
    assert "milliseconds" in str(raised.value)
    assert resolve({}, {"OTEL_SENTRY_DB_SLOW_QUERY_MS": "250"}).db_slow_query_ms == 250.0
    with pytest.raises(ConfigError):
        resolve({"db_slow_query_ms": -1}, {})


def test_instrument_databases_names_what_is_not_installed() -> None:
    from otel_sentry._internal.instrument.db import instrument_databases

    with pytest.raises(ValueError, match="no installed database instrumentation named oracle"):
        instrument_databases(libraries=["oracle"])


def test_without_init_any_otlp_backend_gets_parameterized_statements(
    inbox: Inbox, fresh: None
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from otel_sentry._internal.instrument.db import instrument_databases, uninstrument_databases

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{inbox.url}/v1/traces")))
    uninstrument_databases()  # instrumentations an earlier init() enabled
    try:
        assert instrument_databases(provider, libraries=["sqlite3"], slow_query_ms=0) == ["sqlite3"]
        conn = sqlite3.connect(":memory:")
        conn.cursor().execute(f"SELECT '{SECRET}', {NUMBER}")
        conn.close()
    finally:
        uninstrument_databases()
        provider.shutdown()
    [span] = inbox.wait_for_otlp_spans(1, 10)
    assert span["attributes"]["db.statement"] == "SELECT %s, %s"
    assert span["attributes"]["db.system"] == "sqlite"
    assert span["attributes"][SLOW_QUERY_ATTRIBUTE] is True  # threshold 0: every statement
