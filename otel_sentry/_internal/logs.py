"""structlog processors that put trace ids on every log line and route log events to Sentry.

Two plain processors, composable in any structlog chain (and in ``ProcessorFormatter`` for
stdlib records):

- :func:`add_trace_context` adds ``trace_id``, ``span_id`` and ``trace_sampled`` of the active
  OpenTelemetry span (nothing when there is none);
- :class:`SentryRouter` turns ERROR and above into one Sentry event (message, logger, the
  fields as context, the exception with its frames) and INFO and above into a breadcrumb.

    structlog.configure(processors=[structlog.processors.add_log_level, add_trace_context,
                                    SentryRouter(), structlog.processors.format_exc_info,
                                    structlog.processors.JSONRenderer()])

:func:`otel_sentry.configure_logging` wires both into structlog and stdlib logging in one call.

The router keeps no state per call: its attributes are set once in ``__init__`` and only read
(a memo of ignore decisions per logger name is derived from them), so one instance serves
every thread and task. Breadcrumbs go to sentry_sdk's current isolation
scope, which the ASGI middleware forks per request, so one request's breadcrumbs never reach
another request's event. Events are captured through sentry_sdk, whose global event processor
(``sentry/events.py``) links them to the active span.

This module needs neither structlog nor a running ``init()``: without a Sentry client the router
passes events through untouched.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import sentry_sdk
from opentelemetry import trace
from opentelemetry.context import get_current
from sentry_sdk.consts import DEFAULT_MAX_BREADCRUMBS
from sentry_sdk.scope import Scope
from sentry_sdk.utils import (
    capture_internal_exception,
    event_from_exception,
    format_attribute,
)

from otel_sentry._internal.sentry.dedupe import already_captured

try:  # the key trace.get_current_span() reads; private, so the public call is the fallback
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover - depends on the opentelemetry-api version
    _SPAN_KEY = None  # type: ignore[assignment]

__all__ = ["SentryRouter", "add_trace_context", "level_number", "scrub_log_fields"]

EventDict = MutableMapping[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

_LEVELS: dict[str, int] = {
    "notset": 0,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
# Sentry's level names for a numeric level (its protocol says "fatal", not "critical").
_SENTRY_LEVEL = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
# Sentry Logs' severity (OpenTelemetry's numbers) for a Sentry level name.
_SEVERITY = {"debug": 5, "info": 9, "warning": 13, "error": 17, "fatal": 21}
# Keys that are the log line's own metadata, not the caller's fields.
_RESERVED = frozenset(
    {
        "event",
        "level",
        "logger",
        "timestamp",
        "exc_info",
        "exception",
        "stack_info",
        "stack",
        "trace_id",
        "span_id",
        "trace_sampled",
        "sentry_skip",
        "sentry_event_id",
        "positional_args",
        "_record",
        "_from_structlog",
    }
)
# Bound once: module and attribute lookups are a measurable share of an INFO line's cost.
_UTC = timezone.utc
_now = datetime.now
# Entries kept in the per-router memo of ignored logger names before it starts over.
_MEMO_SIZE = 1024
# Logging from these while sending would recurse (sentry_sdk's own ignore list, plus ours).
_ALWAYS_IGNORED = ("sentry_sdk.errors", "urllib3.connectionpool", "urllib3.connection")
# Servers log their life cycle at INFO here ("Started server process", "Uvicorn running on
# ...", "Booting worker"): recorded at start-up, those lines were the first breadcrumbs of every
# request's error. From these loggers only warnings and above become breadcrumbs.
SERVER_LIFECYCLE_LOGGERS = frozenset({"uvicorn.error", "gunicorn.error", "hypercorn.error"})


def not_server_lifecycle(record: logging.LogRecord) -> bool:
    """A ``logging`` filter: False for a server's INFO life-cycle line."""
    return record.levelno >= logging.WARNING or record.name not in SERVER_LIFECYCLE_LOGGERS


def quiet_server_lifecycle() -> None:
    """sentry_sdk's logging integration records no server life-cycle lines as breadcrumbs."""
    from sentry_sdk.integrations.logging import LoggingIntegration

    integration = sentry_sdk.get_client().get_integration(LoggingIntegration)
    # Its breadcrumb handler is a logging.Handler (handle() applies filters); private, so
    # looked up defensively: without it the lines are breadcrumbs again, nothing breaks.
    handler = getattr(integration, "_breadcrumb_handler", None)
    if isinstance(handler, logging.Handler) and not_server_lifecycle not in handler.filters:
        handler.addFilter(not_server_lifecycle)


def level_number(level: int | str, setting: str = "level") -> int:
    """``"INFO"``, ``"info"`` or ``20`` -> 20; anything else is an error naming ``setting``."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    number = _LEVELS.get(str(level).strip().lower())
    if number is None:
        from otel_sentry._internal.config import ConfigError

        raise ConfigError(
            f"{setting}={level!r} is not a log level. Fix: use DEBUG, INFO, WARNING, ERROR, "
            "CRITICAL or a number."
        )
    return number


def scrub_log_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The one seam where log fields leave the process (event context, tags, breadcrumb data).

    ``otel_sentry._internal.scrub`` plugs in here. sentry_sdk's ``before_send`` and
    ``before_breadcrumb`` still see everything afterwards.
    """
    return fields


_SPAN_TYPES: set[type] = set()
_last_ids: tuple[object, str, str, bool] = (None, "", "", False)

_no_scrub = scrub_log_fields  # the seam as shipped: calling it would change nothing


def _level_of(name_of_level: Any) -> int:
    return _LEVELS.get(str(name_of_level).lower(), logging.INFO)


def add_trace_context(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``trace_id``, ``span_id`` and ``trace_sampled`` of the active span, if there is one.

    Vendor-neutral (OpenTelemetry API only); costs one context lookup when no span is active.
    """
    # trace.get_current_span() without its isinstance() against the Span ABC, which was a third
    # of this function's cost; a type seen once is remembered (a handful exist per process).
    span: Any = get_current().get(_SPAN_KEY) if _SPAN_KEY is not None else trace.get_current_span()
    if span is None:
        return event_dict
    if type(span) not in _SPAN_TYPES:
        if not isinstance(span, trace.Span):
            return event_dict
        _SPAN_TYPES.add(type(span))
    ctx = span.get_span_context()
    # A request logs many lines under one span: its ids are formatted once, not per line. The
    # entry is one tuple, replaced whole, so a thread never sees another thread's half-update;
    # it holds the SpanContext itself, so the identity check cannot match a recycled object.
    global _last_ids
    cached = _last_ids
    if cached[0] is not ctx:
        if not ctx.is_valid:
            return event_dict
        # to_bytes().hex() is about twice as fast as format(..., "032x") for these ints.
        cached = _last_ids = (
            ctx,
            ctx.trace_id.to_bytes(16, "big").hex(),
            ctx.span_id.to_bytes(8, "big").hex(),
            bool(ctx.trace_flags & 1),
        )
    event_dict["trace_id"] = cached[1]
    event_dict["span_id"] = cached[2]
    event_dict["trace_sampled"] = cached[3]
    return event_dict


def _exc_info(event_dict: EventDict) -> ExcInfo | None:
    value = event_dict.get("exc_info")
    if value is None:
        record = event_dict.get("_record")
        if record is not None and getattr(record, "exc_info", None):
            value = record.exc_info
        elif "exception" in event_dict:
            # format_exc_info ran before us and kept only the text. The log call happens while
            # the exception is being handled (log.exception(), exc_info=True), so it is still
            # there to give the event its frames.
            value = True
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple):
        return value if len(value) == 3 and value[0] is not None else None
    if value:
        current = sys.exc_info()
        if current[0] is None:
            return None
        text = event_dict.get("exception")
        if isinstance(text, str) and current[0].__name__ not in text:
            return None  # the text is another exception's than the one being handled now
        return current
    return None


def _logger_name(logger: Any, event_dict: EventDict) -> str | None:
    name = event_dict.get("logger")
    if name:
        return str(name)
    record = event_dict.get("_record")
    if record is not None:
        return str(record.name)
    name = getattr(logger, "name", None)
    return name if isinstance(name, str) else None


class SentryRouter:
    """structlog processor: ERROR and above -> one Sentry event, INFO and above -> a breadcrumb.

    - ``event_level`` / ``breadcrumb_level``: thresholds (names or numbers); ``None`` turns
      that output off.
    - ``tag_keys``: fields that also become event tags (searchable in Sentry).
    - ``ignore_loggers``: logger names whose lines never reach Sentry (children included).
    - ``logs_level``: lines at or above it also become Sentry Logs (``log`` items, with the
      line's trace and span id) when the client has ``enable_logs`` on; ``None``: never.
    - a call with ``sentry_skip=True`` is not sent anywhere; the key is removed from the line.

    The event carries the level, the message, the logger name, every other field under
    ``contexts.log``, and the exception with full frames from ``exc_info``, whether this
    processor runs before or after ``format_exc_info``. The line gets ``sentry_event_id``.
    """

    def __init__(
        self,
        event_level: int | str | None = logging.ERROR,
        breadcrumb_level: int | str | None = logging.INFO,
        *,
        tag_keys: Iterable[str] = (),
        ignore_loggers: Iterable[str] = (),
        logs_level: int | str | None = logging.INFO,
        scrub: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        never = sys.maxsize
        self.event_level = (
            never if event_level is None else level_number(event_level, "event_level")
        )
        self.breadcrumb_level = (
            never
            if breadcrumb_level is None
            else level_number(breadcrumb_level, "breadcrumb_level")
        )
        self.logs_level = never if logs_level is None else level_number(logs_level, "logs_level")
        self.lowest = min(self.event_level, self.breadcrumb_level, self.logs_level)
        self.tag_keys = tuple(tag_keys)
        names = (*_ALWAYS_IGNORED, *ignore_loggers)
        self.ignored = frozenset(names)
        self.ignored_prefixes = tuple(f"{name}." for name in names)
        self.scrub = scrub
        # name -> ignored?; a pure function of the settings above, so sharing it across
        # threads is safe (a race computes the same answer twice).
        self._ignored_names: dict[str, bool] = {}

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        # The INFO path runs on every request thread for every line: each step below is the
        # cheapest form found by profiling (BENCHMARKS.md, bench:logging, has the breakdown).
        # Popped first so that the key never reaches a renderer, whatever happens next.
        skip = event_dict.pop("sentry_skip", False)
        level = _LEVELS.get(event_dict.get("level") or method_name)
        if level is None:
            level = _level_of(event_dict.get("level") or method_name)
        if level < self.lowest or skip:
            return event_dict
        name = event_dict.get("logger")
        if not isinstance(name, str):
            name = _logger_name(logger, event_dict)
        if name is not None:
            ignored = self._ignored_names.get(name)
            if ignored is None:
                ignored = self._remember_ignored(name)
            if ignored:
                return event_dict
        # Scope's own classmethods, not the sentry_sdk.* aliases: the same lookups, one call less.
        client = Scope.get_client()
        if not client.is_active():
            return event_dict
        try:
            fields = {k: v for k, v in event_dict.items() if k not in _RESERVED}
            scrub = self.scrub or scrub_log_fields
            if scrub is not _no_scrub:
                fields = scrub(fields)
            if level >= self.event_level:
                self._capture(client, level, name, fields, event_dict)
            if level >= self.breadcrumb_level and (
                level >= logging.WARNING or name not in SERVER_LIFECYCLE_LOGGERS
            ):
                _breadcrumb(client, level, name, fields, event_dict)
            if level >= self.logs_level and client.options.get("enable_logs"):
                _sentry_log(level, name, fields, event_dict)
        except Exception:  # a log call never fails because of Sentry; sentry_sdk logs it
            capture_internal_exception(sys.exc_info())
        return event_dict

    def _remember_ignored(self, name: str) -> bool:
        ignored = name in self.ignored or name.startswith(self.ignored_prefixes)
        if len(self._ignored_names) >= _MEMO_SIZE:  # logger names built per call: stay bounded
            self._ignored_names.clear()
        self._ignored_names[name] = ignored
        return ignored

    def _capture(
        self, client: Any, level: int, name: str | None, fields: dict[str, Any], ed: EventDict
    ) -> None:
        exc_info = _exc_info(ed)
        if exc_info is not None and already_captured(exc_info[1]):
            return  # sentry_sdk would drop it as a duplicate: do not build it (dedupe.py)
        if exc_info is not None:
            event, hint = event_from_exception(
                exc_info,
                client_options=client.options,
                mechanism={"type": "logging", "handled": True},
            )
        else:
            event, hint = {}, {}
            if isinstance(ed.get("exception"), str):
                # Only the formatted text survived (logged outside the except block).
                fields = {**fields, "exception": ed["exception"]}
        record = ed.get("_record")
        if record is not None:
            hint["log_record"] = record
        event["level"] = _sentry_level(level)  # type: ignore[typeddict-item]
        event["logentry"] = {"message": str(ed.get("event", ""))}
        if name is not None:
            event["logger"] = name
        if fields:
            event["contexts"] = {"log": fields}
            tags = {k: str(fields[k]) for k in self.tag_keys if k in fields}
            if tags:
                event["tags"] = tags
        event_id = sentry_sdk.capture_event(event, hint=hint)
        if event_id:
            ed["sentry_event_id"] = event_id


def _breadcrumb(
    client: Any, level: int, name: str | None, fields: dict[str, Any], ed: EventDict
) -> None:
    message = ed.get("event", "")
    crumb: dict[str, Any] = {
        "type": "log",
        "level": _SENTRY_LEVEL.get(level) or _sentry_level(level),
        "message": message if isinstance(message, str) else str(message),
        # Taken now, as a datetime: sentry_sdk sorts an event's breadcrumbs by it, alongside
        # its own integrations' crumbs, which carry datetimes.
        "timestamp": _now(_UTC),
    }
    if name is not None:
        crumb["category"] = name
    if fields:
        crumb["data"] = fields
    scope = Scope.get_isolation_scope()
    crumbs = getattr(scope, "_breadcrumbs", None)
    if not isinstance(crumbs, deque):  # sentry_sdk's internals moved: the public way
        scope.add_breadcrumb(crumb, hint=_hint(ed))
        return
    # What Scope.add_breadcrumb does, minus a second client lookup and two dict copies: it
    # is most of the cost of an INFO line (see BENCHMARKS.md). before_breadcrumb still sees
    # every crumb, and the same cap applies.
    options = client.options
    before = options.get("before_breadcrumb")
    if before is not None:
        try:
            kept = before(crumb, _hint(ed))
        except Exception:  # what sentry_sdk does: report it, keep the crumb as it was
            capture_internal_exception(sys.exc_info())
            kept = crumb
        if kept is None:
            return
        crumb = kept
    crumbs.append(crumb)
    cap = options.get("max_breadcrumbs", DEFAULT_MAX_BREADCRUMBS)
    while len(crumbs) > cap:
        crumbs.popleft()
        scope._n_breadcrumbs_truncated += 1


def _hint(ed: EventDict) -> dict[str, Any]:
    record = ed.get("_record")
    return {"log_record": record} if record is not None else {}


def _sentry_level(level: int) -> str:
    found = _SENTRY_LEVEL.get(level)
    if found is not None:
        return found
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if level >= threshold:
            return _SENTRY_LEVEL[threshold]
    return "debug"


def _sentry_log(level: int, name: str | None, fields: dict[str, Any], ed: EventDict) -> None:
    """One Sentry Logs record, with the OpenTelemetry span's ids.

    sentry_sdk's public ``sentry_sdk.logger`` takes trace and span ids from its own scope,
    which knows nothing of OpenTelemetry spans; the scope method it calls accepts them
    explicitly, and keeps them.
    """
    severity = _sentry_level(level)
    attributes: dict[str, Any] = {k: format_attribute(v) for k, v in fields.items()}
    attributes["sentry.origin"] = "auto.log.otel_sentry"
    if name is not None:
        attributes["logger.name"] = name
    ctx = trace.get_current_span().get_span_context()
    log: dict[str, Any] = {
        "severity_text": "warn" if severity == "warning" else severity,
        "severity_number": _SEVERITY[severity],
        "attributes": attributes,
        "body": str(ed.get("event", "")),
        "time_unix_nano": time.time_ns(),
        "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else None,
        "span_id": format(ctx.span_id, "016x") if ctx.is_valid else None,
    }
    sentry_sdk.get_current_scope()._capture_log(log)  # type: ignore[arg-type]
