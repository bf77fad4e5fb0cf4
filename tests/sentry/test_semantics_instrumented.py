"""interpret() on spans that the official OpenTelemetry contrib instrumentations really emit.

Real FastAPI, httpx, SQLAlchemy/SQLite, redis-server and Celery traffic is recorded in a child
process per semantic-convention mode (old, stable, both: see tests/support/instrumented.py for
why a process each), then every finished span is fed to interpret() here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.trace import SpanKind

from otel_sentry._internal.sentry.semantics import SpanSemantics, interpret
from tests.support.instrumented import RecordedSpan, record
from tests.support.servers import RedisServer

pytestmark = pytest.mark.integration

SEMCONV_MODES = {"old": "", "stable": "http,database", "both": "http/dup,database/dup"}
Spans = dict[str, list[RecordedSpan]]


@pytest.fixture(scope="module", params=list(SEMCONV_MODES))
def recorded(request: pytest.FixtureRequest, redis_server: RedisServer) -> Spans:
    return record(
        ["fastapi", "httpx", "sqlalchemy", "redis"],
        semconv=SEMCONV_MODES[request.param],
        redis_port=redis_server.port,
    )


@pytest.fixture(scope="module")
def celery_spans() -> list[RecordedSpan]:
    # The Celery instrumentation has no semconv switch: one run covers it.
    return record(["celery"])["celery"]


def sem(span: RecordedSpan) -> SpanSemantics:
    return interpret(span.name, span.kind, span.attributes, span.status_code)


def by_description(spans: list[RecordedSpan], *, kind: SpanKind) -> dict[str, SpanSemantics]:
    found: dict[str, SpanSemantics] = {}
    for span in spans:
        if span.kind is kind:
            result = sem(span)
            assert result.description not in found, f"two spans read as {result.description!r}"
            found[result.description] = result
    return found


def matching(spans: list[RecordedSpan], test: Callable[[RecordedSpan], bool]) -> RecordedSpan:
    hits = [span for span in spans if test(span)]
    assert len(hits) == 1, f"expected one span, got {[s.name for s in hits]}"
    return hits[0]


def test_fastapi_server_spans(recorded: Spans) -> None:
    server = by_description(recorded["fastapi"], kind=SpanKind.SERVER)
    assert server == {
        "GET /items/{item_id}": SpanSemantics("http.server", "GET /items/{item_id}", "route", "ok"),
        "POST /items": SpanSemantics("http.server", "POST /items", "route", "ok"),
        "GET /users/{user_id}/orders/{order_id}": SpanSemantics(
            "http.server", "GET /users/{user_id}/orders/{order_id}", "route", "ok"
        ),
        # No route matched: FastAPI leaves http.route unset, so the raw path and source "url".
        "GET /nope": SpanSemantics("http.server", "GET /nope", "url", "not_found"),
        "GET /private": SpanSemantics("http.server", "GET /private", "route", "permission_denied"),
        "GET /boom": SpanSemantics("http.server", "GET /boom", "route", "internal_error"),
    }


def test_fastapi_asgi_send_spans(recorded: Spans) -> None:
    # The ASGI middleware adds "<name> http send" children carrying the response code but no
    # method: they stay generic functions whose status still follows the code.
    sends = [s for s in recorded["fastapi"] if s.name.endswith("http send")]
    assert sends
    statuses = set()
    for span in sends:
        result = sem(span)
        assert (result.op, result.description, result.source) == ("function", span.name, "custom")
        statuses.add(result.status)
    assert statuses == {"ok", "not_found", "permission_denied", "internal_error"}


def test_httpx_client_spans(recorded: Spans) -> None:
    spans = recorded["httpx"]
    url = str(spans[0].attributes.get("url.full") or spans[0].attributes["http.url"])
    base = url[: url.index("/", len("http://"))]  # http://127.0.0.1:<port>
    client = by_description(spans, kind=SpanKind.CLIENT)
    assert client == {
        f"GET {base}/search/items": SpanSemantics(
            "http.client", f"GET {base}/search/items", "url", "ok"
        ),
        f"GET {base}/missing": SpanSemantics(
            "http.client", f"GET {base}/missing", "url", "not_found"
        ),
        f"POST {base}/unavailable": SpanSemantics(
            "http.client", f"POST {base}/unavailable", "url", "unavailable"
        ),
        f"GET {base}/private": SpanSemantics(
            "http.client", f"GET {base}/private", "url", "unauthenticated"
        ),
    }


@pytest.mark.parametrize("scenario", ["fastapi", "httpx"])
def test_no_query_string_or_credentials_reach_a_description(recorded: Spans, scenario: str) -> None:
    raw = " ".join(str(v) for span in recorded[scenario] for v in span.attributes.values())
    assert "secret-query" in raw  # the instrumentation did record it...
    for span in recorded[scenario]:
        description = sem(span).description
        # ...and none of it reaches Sentry's description.
        assert "secret" not in description
        assert "?" not in description
        assert "REDACTED" not in description
        assert "#" not in description


def test_sqlalchemy_spans(recorded: Spans) -> None:
    spans = recorded["sqlalchemy"]
    results = [sem(span) for span in spans]
    assert {r.op for r in results} == {"db"}
    assert {r.status for r in results} == {"ok"}
    descriptions = [r.description for r in results]
    assert descriptions == [
        "connect",
        "CREATE TABLE users ( id INTEGER NOT NULL, name VARCHAR, PRIMARY KEY (id) )",
        "INSERT INTO users (id, name) VALUES (?, ?)",
        "SELECT id FROM users WHERE name = %s AND id > %s",
        "SELECT users.id, users.name FROM users WHERE users.id IN (?, ?, ?)",
        "SELECT name FROM users WHERE id = ?",
        "connect",
        # sqlcommenter put db_driver, framework and traceparent into db.statement; all gone.
        "SELECT count(*) FROM users WHERE name <> %s",
    ]
    commented = matching(spans, lambda s: "carol" in str(s.attributes.values()))
    assert "traceparent=" in str(commented.attributes.values())


def test_redis_spans(recorded: Spans) -> None:
    results = [sem(span) for span in recorded["redis"]]
    assert results == [
        # The instrumentation masks every argument, keys included, before we see them.
        SpanSemantics("db.redis", "SET ? ?", "custom", "ok"),
        SpanSemantics("db.redis", "GET ?", "custom", "ok"),
        SpanSemantics("db.redis", "HSET ? ? ?", "custom", "ok"),
        SpanSemantics("db.redis", "SET ? ?\nINCRBY ? ?", "custom", "ok"),
    ]


def test_celery_spans(celery_spans: list[RecordedSpan]) -> None:
    results = [(span.kind, sem(span)) for span in celery_spans]
    assert results == [
        (SpanKind.PRODUCER, SpanSemantics("queue.publish", "tasks.add", "custom", "ok")),
        (SpanKind.CONSUMER, SpanSemantics("queue.process", "tasks.add", "task", "ok")),
        (SpanKind.PRODUCER, SpanSemantics("queue.publish", "tasks.fail", "custom", "ok")),
        (
            SpanKind.CONSUMER,
            SpanSemantics("queue.process", "tasks.fail", "task", "internal_error"),
        ),
    ]


SEMCONV_KEYS = {
    "old": {"http.method", "http.status_code", "db.system", "db.statement"},
    "stable": {
        "http.request.method",
        "http.response.status_code",
        "db.system.name",
        "db.query.text",
    },
}


def test_the_semconv_mode_took_effect(recorded: Spans, request: pytest.FixtureRequest) -> None:
    # Guards the test itself: three runs of the same (old) attributes would prove nothing.
    mode = request.node.callspec.params["recorded"]
    keys = {key for spans in recorded.values() for span in spans for key in span.attributes}
    for convention, names in SEMCONV_KEYS.items():
        present = names <= keys
        absent = not (names & keys)
        assert present if mode in (convention, "both") else absent, (mode, convention)
