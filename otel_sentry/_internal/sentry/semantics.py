"""Read an OpenTelemetry span the way Sentry reads its own: op, description, source, status.

Sentry's insights key off the span op (``db*`` fills Queries, ``cache.*`` Caches, ``queue.*``
Queues, ``gen_ai.*`` AI, ``http.client`` Outbound Requests) and group by description, so every
span from an OTel instrumentation is translated here the way Sentry's own SDKs would have
recorded it. Both the old and the stable semantic conventions are read, because which one an
instrumentation emits depends on ``OTEL_SEMCONV_STABILITY_OPT_IN``; no description ever carries
a query string or a literal SQL value.

    sem = interpret(span.name, span.kind, span.attributes, span.status.status_code)
    sem.op, sem.description, sem.source  # "http.server", "GET /items/{item_id}", "route"

This runs on the export thread for every finished span, so lookups are precomputed and the
common paths do a handful of dict reads and one string join.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

# Reused rather than copied: sentry_sdk's table is the one Sentry's own SDK applies (it also
# knows 409 already_exists, 413 failed_precondition and 501 unimplemented).
from sentry_sdk.tracing import get_span_status_from_http_code

from otel_sentry._internal.sql import SqlDialect, parameterize_sql

__all__ = ["SpanSemantics", "interpret", "parameterize_sql", "status_from_http"]


@dataclass(frozen=True, slots=True)
class SpanSemantics:
    """What Sentry needs to know about a span beyond its timing and ids."""

    op: str
    description: str
    source: str
    """Transaction source: ``route``, ``url``, ``task``, ``component`` or ``custom``."""
    status: str


_Attributes = Mapping[str, AttributeValue]
_NO_ATTRIBUTES: _Attributes = MappingProxyType({})

_SOURCES = frozenset({"custom", "url", "route", "view", "component", "task"})

# Enum members hash in Python code; comparing by identity against module-level aliases keeps
# the per-span cost down.
_INTERNAL, _SERVER, _CLIENT, _PRODUCER, _CONSUMER = (
    SpanKind.INTERNAL,
    SpanKind.SERVER,
    SpanKind.CLIENT,
    SpanKind.PRODUCER,
    SpanKind.CONSUMER,
)
_OK, _ERROR = StatusCode.OK, StatusCode.ERROR

_CACHE_OPS = {name: f"cache.{name}" for name in ("get", "put", "remove", "flush")}
_GEN_AI_OPS = {
    name: f"gen_ai.{name}"
    for name in (
        "chat",
        "embeddings",
        "execute_tool",
        "invoke_agent",
        "text_completion",
        "generate_content",
        "create_agent",
    )
}
_QUEUE_OPS = {
    "publish": "queue.publish",
    "send": "queue.publish",
    "create": "queue.publish",
    "process": "queue.process",
    "receive": "queue.process",
    "deliver": "queue.process",
}
# The celery instrumentation names its spans "<action>/<task name>".
_CELERY_ACTIONS = ("run/", "apply_async/")
# Where '"' delimits strings and backslash escapes (document stores send JSON-like text).
_MYSQL_QUOTING = frozenset(
    {"mysql", "mariadb", "mongodb", "elasticsearch", "opensearch", "couchdb", "cosmosdb"}
)
# Redis commands whose first argument is a secret rather than a key.
_REDIS_SECRET_ARGS = frozenset({"AUTH", "HELLO", "MIGRATE"})
_UNSAFE_OP_CHARS = re.compile(r"[^a-z0-9_.]+")

# Indexed by gRPC status code (0 OK ... 16 UNAUTHENTICATED): the same mapping Sentry's own
# OTel integration applies to rpc.grpc.status_code.
_GRPC_STATUS = (
    "ok",
    "cancelled",
    "unknown_error",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal_error",
    "unavailable",
    "data_loss",
    "unauthenticated",
)


def status_from_http(code: int) -> str:
    """Sentry span status for an HTTP status code (404 -> ``not_found``, 2xx -> ``ok``...)."""
    return get_span_status_from_http_code(code)


def interpret(
    name: str,
    kind: SpanKind,
    attributes: _Attributes | None,
    status_code: StatusCode,
) -> SpanSemantics:
    """Translate one finished span; ``sentry.op``/``sentry.description``/``sentry.source`` win."""
    attrs = attributes or _NO_ATTRIBUTES
    op, description, source = _classify(name, kind, attrs)
    if attrs:
        # Explicit values set by the application (or by our own instrumentation) always win.
        explicit = attrs.get("sentry.op")
        if isinstance(explicit, str) and explicit:
            op = explicit
        explicit = attrs.get("sentry.description")
        if isinstance(explicit, str) and explicit:
            description = explicit
        explicit = attrs.get("sentry.source")
        if isinstance(explicit, str) and explicit in _SOURCES:
            source = explicit
    return SpanSemantics(op, description, source, _status(attrs, status_code))


def _kind_op(kind: SpanKind) -> str:
    # Neither Sentry SDK has a kind-based fallback (sentry-python uses the span name as op,
    # Relay writes "default"); a name as op is unbounded, so the kind picks from Sentry's
    # vocabulary instead.
    if kind is _INTERNAL:
        return "function"
    if kind is _SERVER:
        return "server"
    if kind is _CLIENT:
        return "client"
    return "message"


def _classify(name: str, kind: SpanKind, attrs: _Attributes) -> tuple[str, str, str]:
    if not attrs:
        return _kind_op(kind), name, "custom"
    value = attrs.get("cache.operation")
    if isinstance(value, str) and value:
        return _cache(value, name, attrs)
    value = attrs.get("gen_ai.operation.name")
    if isinstance(value, str) and value:
        return _gen_ai(value, name, attrs)
    value = attrs.get("http.request.method") or attrs.get("http.method")
    if isinstance(value, str) and value:
        return _http(value, kind, attrs)
    value = attrs.get("db.system.name") or attrs.get("db.system")
    if isinstance(value, str) and value:
        return _db(value, name, attrs)
    if "messaging.system" in attrs or "celery.action" in attrs:
        return _messaging(name, kind, attrs)
    if "gen_ai.provider.name" in attrs or "gen_ai.system" in attrs:
        return "gen_ai", name, "custom"
    if "rpc.service" in attrs:
        return "rpc", name, "custom"
    value = attrs.get("faas.trigger")
    if isinstance(value, str) and value:
        return value, name, "custom"
    return _kind_op(kind), name, "custom"


def _status(attrs: _Attributes, status_code: StatusCode) -> str:
    if status_code is _OK:
        return "ok"
    if attrs.get("error.type") == "timeout":  # GenAI and other clients: a provider timeout
        return "deadline_exceeded"
    code = attrs.get("http.response.status_code")
    if code is None:
        code = attrs.get("http.status_code")
    if code is not None:
        http = _as_int(code)
        if http is not None:
            return status_from_http(http)
    grpc = attrs.get("rpc.grpc.status_code")
    if grpc is not None:
        index = _as_int(grpc)
        if index is not None and 0 <= index < len(_GRPC_STATUS):
            return _GRPC_STATUS[index]
    return "internal_error" if status_code is _ERROR else "ok"


def _as_int(value: AttributeValue) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # Some instrumentations record the code as a string ("404").
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _http(method: str, kind: SpanKind, attrs: _Attributes) -> tuple[str, str, str]:
    if method == "_OTHER":
        # Stable semconv folds unknown methods into "_OTHER" and keeps the real one here.
        original = attrs.get("http.request.method_original")
        if isinstance(original, str) and original:
            method = original
    op = "http.server" if kind is _SERVER else "http.client" if kind is _CLIENT else "http"
    route = attrs.get("http.route")
    if isinstance(route, str) and route:
        return op, f"{method} {route}", "route"
    url = attrs.get("url.full") or attrs.get("http.url")
    if kind is _CLIENT and isinstance(url, str) and url:
        # Outbound requests name the remote resource the way Sentry's SDKs do, host included,
        # so the Requests insight can group by domain.
        target = _without_query(url)
    else:
        target = _server_path(attrs, url)
    return op, f"{method} {target}" if target else method, "url"


def _server_path(attrs: _Attributes, url: AttributeValue | None) -> str:
    path = attrs.get("url.path")
    if isinstance(path, str) and path:
        return path
    path = attrs.get("http.target")
    if isinstance(path, str) and path:
        return _cut_query(path)
    if isinstance(url, str) and url:
        stripped = _without_query(url)
        scheme = stripped.find("://")
        if scheme == -1:
            return stripped
        slash = stripped.find("/", scheme + 3)
        return stripped[slash:] if slash != -1 else "/"
    return ""


def _cut_query(url: str) -> str:
    # Two C-level finds beat urllib.parse by an order of magnitude on the export thread.
    end = url.find("?")
    fragment = url.find("#", 0, end if end != -1 else len(url))
    if fragment != -1:
        end = fragment
    return url if end == -1 else url[:end]


def _without_query(url: str) -> str:
    """``url`` without query, fragment and ``user:password@``."""
    url = _cut_query(url)
    scheme = url.find("://")
    if scheme != -1:
        host = scheme + 3
        path = url.find("/", host)
        at = url.rfind("@", host, len(url) if path == -1 else path)
        if at != -1:
            url = url[:host] + url[at + 1 :]
    return url


def _db(system: str, name: str, attrs: _Attributes) -> tuple[str, str, str]:
    statement = attrs.get("db.query.text") or attrs.get("db.statement")
    if system == "redis":
        text = _redis_command(statement) if isinstance(statement, str) and statement else name
        return "db.redis", text, "custom"
    if not isinstance(statement, str) or not statement:
        return "db", name, "custom"
    dialect: SqlDialect = "mysql" if system in _MYSQL_QUOTING else "ansi"
    return "db", parameterize_sql(statement, dialect=dialect), "custom"


def _redis_command(statement: str) -> str:
    """Keep the command and its key, mask every further argument (values, secrets).

    The contrib redis instrumentation already sends ``GET ?``; other sources may not.
    """
    if "\n" in statement:  # a pipeline: one command per line
        return "\n".join(_redis_line(line) for line in statement.split("\n"))
    return _redis_line(statement)


def _redis_line(line: str) -> str:
    parts = line.split()
    if len(parts) <= 1:
        return line.strip()
    keep = 1 if parts[0].upper() in _REDIS_SECRET_ARGS else 2
    return " ".join(parts[:keep] + ["?"] * (len(parts) - keep))


def _cache(operation: str, name: str, attrs: _Attributes) -> tuple[str, str, str]:
    op = _CACHE_OPS.get(operation) or f"cache.{_safe_op(operation)}"
    key = attrs.get("cache.key")
    if isinstance(key, str):
        description = key or name
    elif isinstance(key, bytes):
        description = key.decode(errors="replace") or name
    elif isinstance(key, Sequence):  # several keys: the Caches insight shows them joined
        description = ", ".join(str(k) for k in key) or name
    else:
        description = name if key is None else str(key)
    return op, description, "custom"


def _messaging(name: str, kind: SpanKind, attrs: _Attributes) -> tuple[str, str, str]:
    if kind is _PRODUCER:
        op = "queue.publish"
    elif kind is _CONSUMER:
        op = "queue.process"
    else:
        operation = attrs.get("messaging.operation.type") or attrs.get("messaging.operation")
        op = _QUEUE_OPS.get(operation, "message") if isinstance(operation, str) else "message"
    # A Celery task is named by its task, as Sentry's Celery integration does; the routing
    # key the instrumentation records as destination is "celery" for every task.
    task = attrs.get("celery.task_name")
    if isinstance(task, str) and task:
        description = task
    elif name.startswith(_CELERY_ACTIONS) and "celery.action" in attrs:
        description = name.partition("/")[2]
    elif isinstance(attrs.get("code.function.name"), str) and attrs["code.function.name"]:
        # arq and RQ jobs (instrument/job_runs.py): named by their function, as Sentry does.
        description = str(attrs["code.function.name"])
    else:
        destination = attrs.get("messaging.destination.name") or attrs.get("messaging.destination")
        description = destination if isinstance(destination, str) and destination else name
    return op, description, "task" if op == "queue.process" else "custom"


# The subject that follows the operation in a GenAI description ("chat gpt-4o").
_GEN_AI_SUBJECT = {"execute_tool": "gen_ai.tool.name", "invoke_agent": "gen_ai.agent.name"}


def _gen_ai(operation: str, name: str, attrs: _Attributes) -> tuple[str, str, str]:
    op = _GEN_AI_OPS.get(operation) or f"gen_ai.{_safe_op(operation)}"
    if name.startswith(operation):
        return op, name, "custom"
    # Spans named another way (the Anthropic SDK's "anthropic.messages.create") are described
    # as Sentry's AI integrations and the conventions name them: "<operation> <model>".
    subject = attrs.get(_GEN_AI_SUBJECT.get(operation, "gen_ai.request.model")) or attrs.get(
        "gen_ai.response.model"
    )
    return op, f"{operation} {subject}" if isinstance(subject, str) and subject else name, "custom"


def _safe_op(value: str) -> str:
    # Ops are a low-cardinality vocabulary; keep odd input from inventing punctuation.
    return _UNSAFE_OP_CHARS.sub("_", value.lower())
