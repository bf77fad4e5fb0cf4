"""Links every sentry_sdk event to the OpenTelemetry span that was active when it was captured.

sentry_sdk fills ``contexts.trace`` from its own scope, which knows nothing of OTel spans; an
event processor replaces it with the active span's trace id, span id and op, and adds the
trace's DSC, which sentry_sdk moves into the envelope header. That is what puts an error on the
right trace in Sentry's trace view.

An event about an exception captured when no span is current any more (``sys.excepthook``, a
thread's or an asyncio task's unhandled error, a batch job reporting failures at the end) is
linked to the span the exception was raised in instead (``raised_in.py``): the error then sits on
the transaction that recorded the failure. While a span is current it wins, as in sentry_sdk: an
error caught by a request's middleware belongs to the request's span.

    >>> link_events(TransactionDefaults(release="1.0"))   # once, from setup   # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from sentry_sdk.scope import add_global_event_processor
from sentry_sdk.types import Event

from otel_sentry._internal.roots import local_root
from otel_sentry._internal.sentry import raised_in
from otel_sentry._internal.sentry.dsc import DSC_ATTRIBUTE, dsc_for_context, incoming_trace
from otel_sentry._internal.sentry.keep_errors import errored
from otel_sentry._internal.sentry.semantics import interpret
from otel_sentry._internal.sentry.transactions import (
    TransactionDefaults,
    attributes_of,
    dsc_transaction_name,
)

__all__ = [
    "link_events",
    "trace_context_for_current_span",
    "trace_context_for_exception",
    "unlink_events",
]

_defaults: TransactionDefaults | None = None
_registered = False

# Frameworks' error capture (sentry_sdk's ASGI middleware) runs *outside* the OTel server
# middleware, after the request span ended and is no longer current; the error still belongs to
# that span, for a short while after it ended.
_RECENT_NS = 5_000_000_000


def _span_for_event() -> Any:
    span = trace.get_current_span()
    if span.get_span_context().is_valid:
        return span
    root = local_root()
    if (
        root is not None
        and root.kind is SpanKind.SERVER
        and root.end_time is not None
        and time.time_ns() - root.end_time < _RECENT_NS
    ):
        return root
    return None


def trace_context_for_current_span(defaults: TransactionDefaults) -> dict[str, Any] | None:
    span = _span_for_event()
    if span is None:
        return None
    ctx = span.get_span_context()
    out = _identity(span, ctx)
    out["dynamic_sampling_context"] = _dsc(span, ctx, defaults)
    return out


def trace_context_for_exception(
    exc: BaseException | None, defaults: TransactionDefaults
) -> dict[str, Any] | None:
    """The span ``exc`` was raised in, when no span is current (recording) any more."""
    current = trace.get_current_span()
    if current.is_recording():
        # A request's middleware, a job wrapper, `except: capture_exception()` inside a span: the
        # span capturing it is the one that failed now (also for the same exception object
        # re-raised in another request: a shared future, a cached failure).
        return None
    origin = raised_in.raised_in(exc)
    if origin is None:
        return None
    span, root = origin.span, origin.root
    ctx = span.get_span_context()
    out = _identity(span, ctx)
    # As the transaction's own DSC (transactions.dsc_for): from the local root, read now.
    head = root.get_span_context() if root is not None else ctx
    upstream = attributes_of(root).get(DSC_ATTRIBUTE) if root is not None else None
    name = dsc_transaction_name(root, ctx.trace_id)
    out["dynamic_sampling_context"] = dsc_for_context(head, None, defaults, upstream, name)
    return out


def _identity(span: Any, ctx: trace.SpanContext) -> dict[str, Any]:
    out: dict[str, Any] = {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
    if isinstance(span, ReadableSpan):
        if span.parent is not None:
            out["parent_span_id"] = f"{span.parent.span_id:016x}"
        out["op"] = interpret(span.name, span.kind, span.attributes, span.status.status_code).op
    return out


def _dsc(span: Any, ctx: trace.SpanContext, defaults: TransactionDefaults) -> dict[str, str]:
    attrs = getattr(span, "attributes", None) or {}
    name = dsc_transaction_name(local_root(), ctx.trace_id)
    return dsc_for_context(ctx, incoming_trace(None), defaults, attrs.get(DSC_ATTRIBUTE), name)


def _processor(event: Event, hint: dict[str, Any]) -> Event:
    defaults = _defaults
    if defaults is None or event.get("type") == "transaction":
        return event
    exc_info = hint.get("exc_info") if hint else None
    trace_context = None
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        trace_context = trace_context_for_exception(exc_info[1], defaults)
    if trace_context is None:
        trace_context = trace_context_for_current_span(defaults)
    if trace_context is not None:
        if event.get("exception") or event.get("level") in ("error", "fatal"):
            errored.mark(int(trace_context["trace_id"], 16))  # keep_error_traces
        contexts = event.setdefault("contexts", {})
        previous = contexts.get("trace") or {}
        # Keep what sentry_sdk's integrations put there (status, data), replace the identity.
        contexts["trace"] = {**previous, **trace_context}
    return event


def link_events(defaults: TransactionDefaults) -> None:
    """Start linking events (idempotent; sentry_sdk has no way to remove a global processor)."""
    global _defaults, _registered
    _defaults = defaults
    raised_in.install()
    if not _registered:
        add_global_event_processor(_processor)
        _registered = True


def unlink_events() -> None:
    global _defaults
    _defaults = None
    raised_in.uninstall()
