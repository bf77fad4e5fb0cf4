"""Web-framework wiring that any OpenTelemetry backend needs.

A browser only sends ``sentry-trace``, ``baggage`` and ``traceparent`` to another origin when that
origin's CORS preflight allows them; without it a front end's traces stop at the API.

    allow_trace_headers(app, origins=["https://app.example.com"])

The official Starlette instrumentation records an ``http send`` and ``http receive`` span per
ASGI message, which say nothing a trace reader needs and cost as much as the request span; its
FastAPI sibling takes ``exclude_spans`` to leave them out, it does not, so
:func:`starlette_without_message_spans` passes that option to the middleware it adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MESSAGE_SPANS: list[str] = ["receive", "send"]

__all__ = ["TRACE_HEADERS", "allow_trace_headers", "starlette_without_message_spans"]

TRACE_HEADERS: tuple[str, ...] = ("sentry-trace", "baggage", "traceparent", "tracestate")


def allow_trace_headers(
    app: Any,
    origins: Sequence[str],
    *,
    allow_headers: Sequence[str] = ("content-type", "authorization"),
    **cors_options: Any,
) -> None:
    """Add Starlette's ``CORSMiddleware`` allowing ``origins`` to send the trace headers.

    If the app already has its own CORS middleware, add ``TRACE_HEADERS`` to its
    ``allow_headers`` instead of calling this.
    """
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_headers=[*allow_headers, *TRACE_HEADERS],
        **cors_options,
    )


def starlette_without_message_spans() -> None:
    """Apps built from now on by the Starlette instrumentation leave out the per-message spans.

    ``StarletteInstrumentor`` swaps ``starlette.applications.Starlette`` for a subclass whose
    ``__init__`` adds the OTel ASGI middleware without ``exclude_spans``; the middleware stack is
    built on the first request, so setting the option on that entry right after is enough.
    Idempotent; a no-op when the instrumentation is not installed.
    """
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.instrumentation.starlette import _InstrumentedStarlette
    except ImportError:
        return
    original = _InstrumentedStarlette.__init__
    if getattr(original, "_otel_sentry", False):
        return

    def init_without_message_spans(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        for entry in getattr(self, "user_middleware", ()):
            if getattr(entry, "cls", None) is OpenTelemetryMiddleware:
                # starlette >= 0.35 keeps them in ``kwargs``, older releases in ``options``
                options = getattr(entry, "kwargs", None)
                if not isinstance(options, dict):
                    options = getattr(entry, "options", None)
                if isinstance(options, dict):
                    options.setdefault("exclude_spans", list(MESSAGE_SPANS))

    init_without_message_spans._otel_sentry = True  # type: ignore[attr-defined]
    _InstrumentedStarlette.__init__ = init_without_message_spans  # type: ignore[method-assign]
