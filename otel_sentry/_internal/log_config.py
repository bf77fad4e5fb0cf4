"""``configure_logging()``: structlog and stdlib logging through one pipeline, in one call.

Every record, whether it comes from structlog or from a stdlib logger (uvicorn, celery, sqlalchemy,
your own ``logging.getLogger``), ends in one handler on the root logger whose
``structlog.stdlib.ProcessorFormatter`` adds the trace context, routes the record to Sentry
(:class:`otel_sentry._internal.logs.SentryRouter`) and renders it: JSON lines in production,
structlog's console renderer in development.

    otel_sentry.init()
    otel_sentry.configure_logging()   # JSON lines; ERROR -> events, INFO -> breadcrumbs
    structlog.get_logger("shop").info("paid", order=42)

One owner per record: sentry_sdk's ``LoggingIntegration`` (on by default) would turn the same
ERROR into a second event. Records that went through our handler are marked, and the
integration's handlers are given a filter that skips marked records; records that never reach
our handler (a logger with ``propagate=False`` and its own handler) are still the integration's.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import IO, Any, Literal

import sentry_sdk

from otel_sentry._internal.config import ConfigError
from otel_sentry._internal.logs import SentryRouter, add_trace_context, level_number

__all__ = ["FRAMEWORK_LOGGERS", "configure_logging"]

# Loggers that frameworks give handlers of their own (and propagate=False); taken over so their
# lines come out of the same pipeline instead of a second, differently formatted stream.
FRAMEWORK_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn.error",
    "gunicorn.access",
    "celery",
    "celery.task",
    "celery.worker",
    "sqlalchemy",
    "sqlalchemy.engine",
)
_ROUTED = "_otel_sentry_routed"


def _not_routed(record: logging.LogRecord) -> bool:
    return not getattr(record, _ROUTED, False)


def _drop_record_internals(logger: Any, method_name: str, event_dict: Any) -> Any:
    """ExtraAdder copies every non-standard record attribute: our marker, and the ``message``
    and ``asctime`` that any earlier formatter (pytest's, a file handler's) left behind.
    stdlib refuses both names in ``extra=``, so they are never the caller's fields."""
    for key in (_ROUTED, "message", "asctime"):
        event_dict.pop(key, None)
    return event_dict


class PipelineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler ``configure_logging()`` installs; marks the records it routes."""

    def __init__(self, stream: IO[str] | None, routes: bool) -> None:
        super().__init__(stream)
        self.routes = routes
        self._integration_seen: object = None

    def handle(self, record: logging.LogRecord) -> bool:
        if self.routes:
            # The original record: ProcessorFormatter works on a copy, and sentry_sdk's
            # LoggingIntegration looks at the original after every handler has run.
            setattr(record, _ROUTED, True)
            self._step_aside_logging_integration()
        return bool(super().handle(record))

    def _step_aside_logging_integration(self) -> None:
        """Give the current client's LoggingIntegration a filter for the records we own.

        Checked per record, not once: init() may run (and create a new client) after
        configure_logging(). A client's integration is a new object, so one identity check
        is all it costs most of the time.
        """
        integration = sentry_sdk.get_client().get_integration("logging")
        if integration is None or integration is self._integration_seen:
            return
        # Private attributes of sentry_sdk's LoggingIntegration (2.x): its three handlers.
        for attribute in ("_handler", "_breadcrumb_handler", "_sentry_logs_handler"):
            handler = getattr(integration, attribute, None)
            if isinstance(handler, logging.Handler):
                handler.addFilter(_not_routed)  # no-op when already there
        self._integration_seen = integration


def configure_logging(
    *,
    level: int | str = logging.INFO,
    renderer: Literal["auto", "json", "console"] = "auto",
    event_level: int | str | None = logging.ERROR,
    breadcrumb_level: int | str | None = logging.INFO,
    tag_keys: Iterable[str] = (),
    ignore_loggers: Iterable[str] = (),
    logs_level: int | str | None = logging.INFO,
    to_sentry: bool = True,
    take_over: Iterable[str] = FRAMEWORK_LOGGERS,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Configure structlog and stdlib logging to share one pipeline; returns the root handler.

    - ``level``: the lowest level printed (and so the lowest routed to Sentry);
    - ``renderer``: ``json`` (one JSON object per line), ``console`` (coloured, readable) or
      ``auto`` (console when ``stream`` is a terminal, JSON otherwise);
    - ``event_level`` / ``breadcrumb_level`` / ``tag_keys`` / ``ignore_loggers`` / ``logs_level``
      (Sentry Logs, when ``init(enable_logs=True)``): see
      :class:`otel_sentry._internal.logs.SentryRouter`; ``to_sentry=False`` prints only
      (sentry_sdk's ``LoggingIntegration``, if on, then keeps doing what it does);
    - ``take_over``: loggers whose own handlers are removed so they propagate here;
    - ``stream``: where lines go (default ``sys.stderr``).

    Calling it again replaces the handler it installed before; other root handlers are left alone.
    """
    try:
        import structlog
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "configure_logging() needs structlog. Fix: pip install 'otel-sentry[structlog]'."
        ) from exc
    if renderer not in ("auto", "json", "console"):
        raise ConfigError(
            f"renderer={renderer!r} is not a renderer. Fix: use 'json', 'console' or 'auto'."
        )
    threshold = level_number(level, "level")
    out = stream if stream is not None else sys.stderr
    if renderer == "auto":
        renderer = "console" if _is_terminal(out) else "json"

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        timestamper,
    ]
    routing: list[Any] = [add_trace_context]
    if to_sentry:
        routing.append(
            SentryRouter(
                event_level,
                breadcrumb_level,
                tag_keys=tag_keys,
                ignore_loggers=ignore_loggers,
                logs_level=logs_level,
            )
        )
    final: list[Any]
    if renderer == "json":
        final = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        final = [structlog.dev.ConsoleRenderer()]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_record_internals],
        # Routing sits here, not in structlog's chain, so that structlog and stdlib records
        # pass through it exactly once, in the thread (and context) of the logging call.
        processors=[
            *routing,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
        ],
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    handler = PipelineHandler(out, routes=to_sentry)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, PipelineHandler):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in take_over:
        framework_logger = logging.getLogger(name)
        for existing in list(framework_logger.handlers):
            framework_logger.removeHandler(existing)
        framework_logger.propagate = True
        # dictConfig(disable_existing_loggers=True) (Django's and Celery's defaults) disables
        # loggers that existed before it ran, and a framework's own config leaves its level
        # behind (uvicorn --log-level error): taken over, they follow our threshold.
        framework_logger.disabled = False
        framework_logger.setLevel(logging.NOTSET)
    return handler


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
