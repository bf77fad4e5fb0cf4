"""interpret(): hand-written attributes, old and stable semantic conventions, -> Sentry's view."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_sentry._internal.sentry.semantics import SpanSemantics, interpret, status_from_http

SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
PRODUCER, CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER
UNSET, OK, ERROR = StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR

Attrs = Mapping[str, AttributeValue]


def case(
    name: str,
    kind: SpanKind,
    attrs: Attrs | None,
    expected: tuple[str, str, str, str],
    *,
    status: StatusCode = UNSET,
    id: str,
) -> object:
    return pytest.param(name, kind, attrs, status, SpanSemantics(*expected), id=id)


HTTP_CASES = [
    case(
        "GET /items/{item_id}",
        SERVER,
        {
            "http.method": "GET",
            "http.route": "/items/{item_id}",
            "http.target": "/items/42?q=secret",
            "http.url": "http://h/items/42?q=secret",
            "http.status_code": 200,
        },
        ("http.server", "GET /items/{item_id}", "route", "ok"),
        id="old-server-route",
    ),
    case(
        "GET /items/{item_id}",
        SERVER,
        {
            "http.request.method": "GET",
            "http.route": "/items/{item_id}",
            "url.path": "/items/42",
            "url.query": "q=secret",
            "http.response.status_code": 200,
        },
        ("http.server", "GET /items/{item_id}", "route", "ok"),
        id="new-server-route",
    ),
    case(
        "GET",
        SERVER,
        {"http.method": "GET", "http.target": "/nope?token=secret#frag", "http.status_code": 404},
        ("http.server", "GET /nope", "url", "not_found"),
        id="old-server-target-without-query",
    ),
    case(
        "GET",
        SERVER,
        {"http.request.method": "GET", "url.path": "/nope", "http.response.status_code": 404},
        ("http.server", "GET /nope", "url", "not_found"),
        id="new-server-path",
    ),
    case(
        "POST",
        SERVER,
        {"http.method": "POST", "http.url": "https://h:8443/a/b?x=secret"},
        ("http.server", "POST /a/b", "url", "ok"),
        id="old-server-path-from-url",
    ),
    case(
        "POST",
        SERVER,
        {"http.request.method": "POST", "url.full": "https://h"},
        ("http.server", "POST /", "url", "ok"),
        id="new-server-url-without-path",
    ),
    case(
        "GET",
        CLIENT,
        {"http.method": "GET", "http.url": "https://api.example.com/v1/users?token=secret"},
        ("http.client", "GET https://api.example.com/v1/users", "url", "ok"),
        id="old-client",
    ),
    case(
        "GET",
        CLIENT,
        {
            "http.request.method": "GET",
            "url.full": "https://alice:secret@api.example.com:8443/v1?x=secret#secret",
            "http.response.status_code": 503,
        },
        ("http.client", "GET https://api.example.com:8443/v1", "url", "unavailable"),
        id="new-client-credentials-and-query-stripped",
    ),
    case(
        "GET",
        CLIENT,
        {"http.request.method": "GET", "url.path": "/only/path"},
        ("http.client", "GET /only/path", "url", "ok"),
        id="client-without-url",
    ),
    case(
        "GET",
        SERVER,
        {"http.request.method": "GET"},
        ("http.server", "GET", "url", "ok"),
        id="method-only",
    ),
    case(
        "HTTP",
        SERVER,
        {
            "http.request.method": "_OTHER",
            "http.request.method_original": "PURGE",
            "url.path": "/cache",
        },
        ("http.server", "PURGE /cache", "url", "ok"),
        id="unknown-method-uses-original",
    ),
    case(
        "GET",
        INTERNAL,
        {"http.method": "GET", "http.target": "/x"},
        ("http", "GET /x", "url", "ok"),
        id="neither-server-nor-client",
    ),
]

DB_CASES = [
    case(
        "SELECT app",
        CLIENT,
        {"db.system": "postgresql", "db.statement": "SELECT * FROM users WHERE id = 42"},
        ("db", "SELECT * FROM users WHERE id = %s", "custom", "ok"),
        id="old-sql",
    ),
    case(
        "SELECT app",
        CLIENT,
        {
            "db.system.name": "postgresql",
            "db.query.text": "SELECT * FROM users WHERE id = $1 AND name = 'bob'",
        },
        ("db", "SELECT * FROM users WHERE id = $1 AND name = %s", "custom", "ok"),
        id="new-sql",
    ),
    case(
        "SELECT",
        CLIENT,
        {"db.system": "mysql", "db.statement": 'SELECT * FROM t WHERE name = "alice"'},
        ("db", "SELECT * FROM t WHERE name = %s", "custom", "ok"),
        id="mysql-double-quoted-string",
    ),
    case(
        "connect",
        CLIENT,
        {"db.system": "sqlite", "db.name": "app.db"},
        ("db", "connect", "custom", "ok"),
        id="no-statement-uses-name",
    ),
    case(
        "SELECT",
        CLIENT,
        {"db.system": "sqlite", "db.statement": "SELECT 1"},
        ("db", "SELECT %s", "custom", "internal_error"),
        status=ERROR,
        id="failed-query",
    ),
    case(
        "GET",
        CLIENT,
        {"db.system": "redis", "db.statement": "GET ?"},
        ("db.redis", "GET ?", "custom", "ok"),
        id="old-redis-as-instrumented",
    ),
    case(
        "GET",
        CLIENT,
        {"db.system.name": "redis", "db.query.text": "GET users:42"},
        ("db.redis", "GET users:42", "custom", "ok"),
        id="new-redis-key-kept",
    ),
    case(
        "SET",
        CLIENT,
        {"db.system": "redis", "db.statement": "SET users:42 secret-value EX 60"},
        ("db.redis", "SET users:42 ? ? ?", "custom", "ok"),
        id="redis-values-masked",
    ),
    case(
        "AUTH",
        CLIENT,
        {"db.system": "redis", "db.statement": "AUTH hunter2"},
        ("db.redis", "AUTH ?", "custom", "ok"),
        id="redis-auth-masked",
    ),
    case(
        "SET INCRBY",
        CLIENT,
        {"db.system": "redis", "db.statement": "SET a secret\nINCRBY b 5"},
        ("db.redis", "SET a ?\nINCRBY b ?", "custom", "ok"),
        id="redis-pipeline",
    ),
    case(
        "PING",
        CLIENT,
        {"db.system": "redis"},
        ("db.redis", "PING", "custom", "ok"),
        id="redis-without-statement",
    ),
]

CACHE_CASES = [
    case(
        "cache get",
        CLIENT,
        {"cache.operation": "get", "cache.key": ("users:42",), "cache.hit": True},
        ("cache.get", "users:42", "custom", "ok"),
        id="get",
    ),
    case(
        "cache put",
        CLIENT,
        {"cache.operation": "put", "cache.key": ("a", "b"), "cache.item_size": 12},
        ("cache.put", "a, b", "custom", "ok"),
        id="put-several-keys",
    ),
    case(
        "cache remove",
        CLIENT,
        {"cache.operation": "remove", "cache.key": "session:1"},
        ("cache.remove", "session:1", "custom", "ok"),
        id="remove-string-key",
    ),
    case(
        "cache flush",
        CLIENT,
        {"cache.operation": "flush"},
        ("cache.flush", "cache flush", "custom", "ok"),
        id="flush-without-key",
    ),
    case(
        "cache get",
        CLIENT,
        {"cache.operation": "get", "cache.key": b"raw:1"},
        ("cache.get", "raw:1", "custom", "ok"),
        id="bytes-key",
    ),
    case(
        "cache touch",
        CLIENT,
        {"cache.operation": "Touch It", "cache.key": "k"},
        ("cache.touch_it", "k", "custom", "ok"),
        id="unknown-operation-sanitised",
    ),
]

QUEUE_CASES = [
    case(
        "orders publish",
        PRODUCER,
        {"messaging.system": "kafka", "messaging.destination.name": "orders"},
        ("queue.publish", "orders", "custom", "ok"),
        id="producer",
    ),
    case(
        "orders process",
        CONSUMER,
        {"messaging.system": "kafka", "messaging.destination.name": "orders"},
        ("queue.process", "orders", "task", "ok"),
        id="consumer",
    ),
    case(
        "orders send",
        CLIENT,
        {"messaging.system": "rabbitmq", "messaging.operation.type": "send"},
        ("queue.publish", "orders send", "custom", "ok"),
        id="send-by-operation-type",
    ),
    case(
        "orders create",
        INTERNAL,
        {"messaging.system": "kafka", "messaging.operation.type": "create"},
        ("queue.publish", "orders create", "custom", "ok"),
        id="create-by-operation-type",
    ),
    case(
        "orders receive",
        CLIENT,
        {
            "messaging.system": "rabbitmq",
            "messaging.operation": "receive",
            "messaging.destination": "orders",
        },
        ("queue.process", "orders", "task", "ok"),
        id="old-receive",
    ),
    case(
        "orders deliver",
        INTERNAL,
        {"messaging.system": "sqs", "messaging.operation": "deliver"},
        ("queue.process", "orders deliver", "task", "ok"),
        id="old-deliver",
    ),
    case(
        "orders settle",
        CLIENT,
        {"messaging.system": "kafka", "messaging.operation.type": "settle"},
        ("message", "orders settle", "custom", "ok"),
        id="messaging-without-queue-op",
    ),
    case(
        "apply_async/tasks.add",
        PRODUCER,
        {"celery.action": "apply_async", "celery.task_name": "tasks.add"},
        ("queue.publish", "tasks.add", "custom", "ok"),
        id="celery-producer",
    ),
    case(
        "run/tasks.add",
        CONSUMER,
        {"celery.action": "run", "messaging.destination": "celery"},
        ("queue.process", "tasks.add", "task", "internal_error"),
        status=ERROR,
        id="celery-task-name-from-span-name",
    ),
]

OTHER_CASES = [
    *(
        case(
            f"{operation} gpt-4o",
            CLIENT,
            {"gen_ai.operation.name": operation, "gen_ai.provider.name": "openai"},
            (f"gen_ai.{operation}", f"{operation} gpt-4o", "custom", "ok"),
            id=f"gen_ai-{operation}",
        )
        for operation in (
            "chat",
            "embeddings",
            "execute_tool",
            "invoke_agent",
            "text_completion",
            "generate_content",
            "create_agent",
        )
    ),
    case(
        "rerank",
        CLIENT,
        {"gen_ai.operation.name": "Re-Rank Docs", "gen_ai.system": "cohere"},
        ("gen_ai.re_rank_docs", "rerank", "custom", "ok"),
        id="gen_ai-unknown-operation-sanitised",
    ),
    case(
        "chat",
        CLIENT,
        {"gen_ai.system": "openai"},
        ("gen_ai", "chat", "custom", "ok"),
        id="gen_ai-without-operation",
    ),
    case(
        "helloworld.Greeter/SayHello",
        CLIENT,
        {"rpc.system": "grpc", "rpc.service": "helloworld.Greeter", "rpc.grpc.status_code": 5},
        ("rpc", "helloworld.Greeter/SayHello", "custom", "not_found"),
        status=ERROR,
        id="rpc",
    ),
    case(
        "nightly",
        SERVER,
        {"faas.trigger": "timer"},
        ("timer", "nightly", "custom", "ok"),
        id="faas",
    ),
    case("work", INTERNAL, {"app.detail": 1}, ("function", "work", "custom", "ok"), id="internal"),
    case("ws", SERVER, None, ("server", "ws", "custom", "ok"), id="server-no-attributes"),
    case("call", CLIENT, {}, ("client", "call", "custom", "ok"), id="client-empty-attributes"),
    case("emit", PRODUCER, None, ("message", "emit", "custom", "ok"), id="producer-no-messaging"),
    case("take", CONSUMER, None, ("message", "take", "custom", "ok"), id="consumer-no-messaging"),
    case(
        "oops",
        INTERNAL,
        None,
        ("function", "oops", "custom", "internal_error"),
        status=ERROR,
        id="internal-error",
    ),
]

OVERRIDE_CASES = [
    case(
        "SELECT",
        CLIENT,
        {"db.system": "sqlite", "db.statement": "SELECT 1", "sentry.op": "db.sql.query"},
        ("db.sql.query", "SELECT %s", "custom", "ok"),
        id="op-only",
    ),
    case(
        "GET",
        SERVER,
        {
            "http.method": "GET",
            "http.route": "/a",
            "sentry.op": "websocket.server",
            "sentry.description": "chat socket",
            "sentry.source": "component",
        },
        ("websocket.server", "chat socket", "component", "ok"),
        id="all-three",
    ),
    case(
        "job",
        INTERNAL,
        {"sentry.source": "not-a-source", "sentry.op": ""},
        ("function", "job", "custom", "ok"),
        id="invalid-values-ignored",
    ),
]


@pytest.mark.parametrize(
    ("name", "kind", "attrs", "status", "expected"),
    [*HTTP_CASES, *DB_CASES, *CACHE_CASES, *QUEUE_CASES, *OTHER_CASES, *OVERRIDE_CASES],
)
def test_interpret(
    name: str, kind: SpanKind, attrs: Attrs | None, status: StatusCode, expected: SpanSemantics
) -> None:
    assert interpret(name, kind, attrs, status) == expected


STATUS_TABLE = [
    (200, "ok"),
    (201, "ok"),
    (302, "ok"),
    (400, "invalid_argument"),
    (401, "unauthenticated"),
    (403, "permission_denied"),
    (404, "not_found"),
    (418, "invalid_argument"),
    (422, "invalid_argument"),
    (429, "resource_exhausted"),
    (500, "internal_error"),
    (502, "internal_error"),
    (503, "unavailable"),
    (504, "deadline_exceeded"),
    # sentry_sdk's table, which we reuse, is finer than the short list in our notes:
    (409, "already_exists"),
    (413, "failed_precondition"),
    (501, "unimplemented"),
]


@pytest.mark.parametrize(("code", "expected"), STATUS_TABLE)
def test_status_from_http(code: int, expected: str) -> None:
    assert status_from_http(code) == expected


@pytest.mark.parametrize(("code", "expected"), STATUS_TABLE)
@pytest.mark.parametrize("key", ["http.status_code", "http.response.status_code"])
@pytest.mark.parametrize("otel_status", [UNSET, ERROR])
def test_status_from_http_attribute(
    code: int, expected: str, key: str, otel_status: StatusCode
) -> None:
    attrs: dict[str, AttributeValue] = {"http.method": "GET", key: code}
    assert interpret("GET", SERVER, attrs, otel_status).status == expected


@pytest.mark.parametrize(
    ("attrs", "otel_status", "expected"),
    [
        pytest.param({"http.status_code": 500}, OK, "ok", id="otel-ok-wins-over-code"),
        pytest.param({}, UNSET, "ok", id="unset-without-code"),
        pytest.param({}, ERROR, "internal_error", id="error-without-code"),
        pytest.param({"http.status_code": 404}, ERROR, "not_found", id="code-wins-over-error"),
        pytest.param({"http.status_code": "503"}, UNSET, "unavailable", id="code-as-string"),
        pytest.param({"http.status_code": "n/a"}, ERROR, "internal_error", id="garbage-code"),
        pytest.param({"http.status_code": True}, UNSET, "ok", id="bool-is-not-a-code"),
        pytest.param({"rpc.grpc.status_code": 14}, ERROR, "unavailable", id="grpc"),
        pytest.param({"rpc.grpc.status_code": 99}, ERROR, "internal_error", id="grpc-unknown"),
    ],
)
def test_status_rule(attrs: Attrs, otel_status: StatusCode, expected: str) -> None:
    assert interpret("span", INTERNAL, attrs, otel_status).status == expected


@pytest.mark.parametrize("kind", [SERVER, CLIENT])
@pytest.mark.parametrize(
    "attrs",
    [
        {"http.method": "GET", "http.target": "/p?token=SECRET"},
        {"http.method": "GET", "http.target": "/p#SECRET"},
        {"http.method": "GET", "http.url": "http://h/p?token=SECRET"},
        {"http.method": "GET", "http.url": "http://h/p?a=1#SECRET"},
        {"http.request.method": "GET", "url.full": "http://h/p?token=SECRET"},
        {"http.request.method": "GET", "url.full": "http://u:SECRET@h/p"},
        {"http.request.method": "GET", "url.path": "/p", "url.query": "token=SECRET"},
        {"http.request.method": "GET", "url.full": "h/p?token=SECRET"},
    ],
)
def test_query_strings_never_reach_the_description(kind: SpanKind, attrs: Attrs) -> None:
    description = interpret("GET", kind, attrs, UNSET).description
    assert "SECRET" not in description
    assert "?" not in description
    assert description.endswith("/p")
