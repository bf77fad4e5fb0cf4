"""Which span is the root of the work the current context is doing.

Set once per local root span (one ``ContextVar.set`` in ``on_start``) and kept after the span
ends, in the context that started it. Two things need it: helpers such as ``set_user`` write to
the request's root span wherever they are called from, and errors that frameworks capture
*after* the server span ended (sentry_sdk's ASGI middleware sits outside OTel's) still belong to
that span. Each request and task runs in its own context, so nothing leaks between them.

    >>> root = local_root()   # the request's server span, or None  # doctest: +SKIP
"""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

__all__ = ["LocalRootTracker", "local_root"]

_local_root: ContextVar[Span | None] = ContextVar("otel_sentry_local_root", default=None)


class LocalRootTracker(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.parent is None or span.parent.is_remote:
            _local_root.set(span)


def local_root() -> Span | None:
    """The root span of the current request or task (possibly already ended), if any."""
    return _local_root.get()
