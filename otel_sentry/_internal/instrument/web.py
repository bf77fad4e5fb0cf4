"""Web-framework wiring that any OpenTelemetry backend needs: let browsers send trace headers.

A browser only sends ``sentry-trace``, ``baggage`` and ``traceparent`` to another origin when that
origin's CORS preflight allows them; without it a front end's traces stop at the API.

    allow_trace_headers(app, origins=["https://app.example.com"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["TRACE_HEADERS", "allow_trace_headers"]

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
