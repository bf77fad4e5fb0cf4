"""Databases: the official OpenTelemetry instrumentations, with statements safe to export.

SQLAlchemy (sync and async), asyncpg, psycopg 3, psycopg2 and sqlite3 are traced by their contrib
instrumentations. What those lack, and this module adds through the tracer they are given:

- **no literal values in ``db.statement`` / ``db.query.text``**: an inline ``WHERE id = 42`` is
  recorded as ``WHERE id = %s`` before any exporter (Sentry's or OTLP) sees the span;
- **one span per query**: under SQLAlchemy the driver's own span (psycopg, asyncpg, sqlite3)
  would repeat the same statement as a sibling; the SQLAlchemy span, which knows the engine's
  URL, is kept and the driver's is not recorded;
- ``server.address`` / ``server.port`` next to the older ``net.peer.name`` / ``net.peer.port``;
- optionally ``db.query.slow = true`` on statements slower than a threshold.

    instrument_databases(slow_query_ms=250)   # or otel_sentry.init(db_slow_query_ms=250)

``init()`` enables the same instrumentations through the registry, wrapped the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import Attributes, AttributeValue

from otel_sentry._internal.sql import SqlDialect, parameterize_sql

_log = logging.getLogger("otel_sentry")

__all__ = [
    "DATABASE_INSTRUMENTATIONS",
    "SLOW_QUERY_ATTRIBUTE",
    "instrument_databases",
    "query_tracer_provider",
    "set_slow_query_threshold",
    "uninstrument_databases",
]

DATABASE_INSTRUMENTATIONS: tuple[str, ...] = (
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    "psycopg2",
    "sqlite3",
    "aiopg",
    "pymysql",
    "mysql",
    "mysqlclient",
    "pymssql",
)
"""Entry-point names of the contrib instrumentations whose tracer is wrapped here."""

SLOW_QUERY_ATTRIBUTE = "db.query.slow"

_STATEMENT_KEYS = frozenset({"db.statement", "db.query.text"})
_SYSTEM_KEYS = frozenset({"db.system", "db.system.name"})
# Older semantic conventions name the server differently; Sentry's Queries insight and current
# OTel backends read server.address/server.port.
_SERVER_ALIASES = {"net.peer.name": "server.address", "net.peer.port": "server.port"}
# Where '"' delimits strings and backslash escapes.
_MYSQL_SYSTEMS = frozenset({"mysql", "mariadb"})
_ORM_MODULE = "opentelemetry.instrumentation.sqlalchemy"

# Nanoseconds; None = no slow-query attribute. Module state, so a re-init changes it for the
# tracers instrumentations already hold.
_slow_query_ns: int | None = None

# The SQLAlchemy span of the statement running in this context. SQLAlchemy does not make its
# span current while the driver executes, so the driver's tracer looks here to avoid a second
# span for the same statement. A stale value is harmless: an ended span no longer records.
_ORM_SPAN: ContextVar[Span | None] = ContextVar("otel_sentry_orm_span", default=None)


def set_slow_query_threshold(slow_query_ms: float | None) -> None:
    """Mark statements that take at least ``slow_query_ms`` with ``db.query.slow = true``."""
    global _slow_query_ns
    _slow_query_ns = None if slow_query_ms is None else int(slow_query_ms * 1_000_000)


@lru_cache(maxsize=2048)
def _parameterized(statement: str, dialect: SqlDialect) -> str:
    # Applications repeat the same few hundred statements; the cache makes this a dict lookup.
    return parameterize_sql(statement, dialect=dialect)


class _QuerySpan(Span):
    """A database span that exports its statement without literals, set when the span ends."""

    __slots__ = ("_delegate", "_dialect", "_started", "_statement")

    def __init__(self, delegate: Span, statement: tuple[str, str] | None, system: object) -> None:
        self._delegate = delegate
        self._statement = statement
        self._dialect: SqlDialect = "mysql" if system in _MYSQL_SYSTEMS else "ansi"
        self._started = time.perf_counter_ns()

    def end(self, end_time: int | None = None) -> None:
        statement = self._statement
        if statement is not None:
            key, text = statement
            self._delegate.set_attribute(key, _parameterized(text, self._dialect))
        threshold = _slow_query_ns
        if threshold is not None and time.perf_counter_ns() - self._started >= threshold:
            self._delegate.set_attribute(SLOW_QUERY_ATTRIBUTE, True)
        self._delegate.end(end_time)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if key in _STATEMENT_KEYS and isinstance(value, str):
            self._statement = (key, value)
            return
        if key in _SYSTEM_KEYS:
            self._dialect = "mysql" if value in _MYSQL_SYSTEMS else "ansi"
        alias = _SERVER_ALIASES.get(key)
        if alias is not None:
            self._delegate.set_attribute(alias, value)
        self._delegate.set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def get_span_context(self) -> SpanContext:
        return self._delegate.get_span_context()

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        self._delegate.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        self._delegate.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._delegate.update_name(name)

    def is_recording(self) -> bool:
        return self._delegate.is_recording()

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._delegate.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._delegate.record_exception(exception, attributes, timestamp, escaped)

    def __getattr__(self, name: str) -> Any:
        # SDK-only members (name, attributes, ...) that some code reads off the current span.
        return getattr(self._delegate, name)


class _QueryTracer(Tracer):
    """Hands out :class:`_QuerySpan`; one per instrumentation, wrapping the real tracer."""

    def __init__(self, delegate: Tracer, orm: bool) -> None:
        self._delegate = delegate
        self._orm = orm

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        if not self._orm:
            orm_span = _ORM_SPAN.get()
            if orm_span is not None and orm_span.is_recording():
                return NonRecordingSpan(orm_span.get_span_context())
        statement: tuple[str, str] | None = None
        system: object = None
        if attributes:
            kept: dict[str, AttributeValue] = {}
            for key, value in attributes.items():
                if key in _STATEMENT_KEYS and isinstance(value, str):
                    statement = (key, value)
                    continue
                if key in _SYSTEM_KEYS:
                    system = value
                alias = _SERVER_ALIASES.get(key)
                if alias is not None and alias not in attributes:
                    kept[alias] = value
                kept[key] = value
            attributes = kept
        span = self._delegate.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        if not span.is_recording():
            return span
        wrapped = _QuerySpan(span, statement, system)
        if self._orm:
            _ORM_SPAN.set(wrapped)
        return wrapped

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class _QueryTracerProvider(TracerProvider):
    def __init__(self, delegate: TracerProvider | None) -> None:
        self._delegate = delegate

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> Tracer:
        tracer = trace.get_tracer(
            instrumenting_module_name,
            instrumenting_library_version,
            self._delegate,
            schema_url,
            attributes,
        )
        return _QueryTracer(tracer, orm=instrumenting_module_name.startswith(_ORM_MODULE))


def query_tracer_provider(tracer_provider: TracerProvider | None = None) -> TracerProvider:
    """A provider to pass to a database instrumentation: its spans get the additions above.

    ``None`` follows the global provider, also one set later.
    """
    if isinstance(tracer_provider, _QueryTracerProvider):
        return tracer_provider
    return _QueryTracerProvider(tracer_provider)


def _instrumentors() -> dict[str, Any]:
    return {
        ep.name: ep
        for ep in entry_points(group="opentelemetry_instrumentor")
        if ep.name in DATABASE_INSTRUMENTATIONS
    }


def instrument_databases(
    tracer_provider: TracerProvider | None = None,
    *,
    libraries: Sequence[str] | None = None,
    slow_query_ms: float | None = None,
) -> list[str]:
    """Enable the installed database instrumentations (or the named ones); returns their names.

    An instrumentation that is already enabled is left as it is. ``init()`` does this itself;
    call it when setting up OpenTelemetry without ``init()``.
    """
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    set_slow_query_threshold(slow_query_ms)
    available = _instrumentors()
    wanted = list(available) if libraries is None else list(libraries)
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise ValueError(
            f"no installed database instrumentation named {', '.join(unknown)} "
            f"(installed: {', '.join(sorted(available)) or 'none'}); "
            "install opentelemetry-instrumentation-<name>"
        )
    provider = query_tracer_provider(tracer_provider)
    enabled: list[str] = []
    for name in wanted:
        instrumentor = available[name].load()()
        if get_dependency_conflicts(instrumentor.instrumentation_dependencies()) is not None:
            continue  # the library itself is not installed
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
        enabled.append(name)
    return enabled


def uninstrument_databases() -> None:
    """Undo :func:`instrument_databases` (and the database part of ``init()``)."""
    for name, ep in _instrumentors().items():
        instrumentor = ep.load()()
        if not instrumentor.is_instrumented_by_opentelemetry:
            continue
        try:
            instrumentor.uninstrument()
        except Exception:  # e.g. SQLAlchemy's, for an async engine already disposed
            _log.warning("otel-sentry: uninstrumenting %s failed", name, exc_info=True)
            # SQLAlchemy's unwraps create_engine first and then fails removing the listeners of
            # an engine that is gone, leaving itself marked as instrumented: the next init()
            # would skip it and no engine created after that would be traced.
            instrumentor._is_instrumented_by_opentelemetry = False
