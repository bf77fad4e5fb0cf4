"""Remembers, on the exception itself, the span it was raised in, for errors captured later.

An error is linked to the span that is current when sentry_sdk captures it (``events.py``). Many
errors are captured after the span they happened in has ended and is no longer current:
``sys.excepthook`` (a script or batch job dying with a traceback), ``threading.excepthook`` and
sentry_sdk's ``ThreadingIntegration``, asyncio's "Task exception was never retrieved", a job
that collects failures and calls ``capture_exception(exc)`` at the end. Those errors got a trace
of their own, unrelated to the transaction that recorded the failure.

The one moment the exception and its span meet is when the exception leaves the span:
OpenTelemetry's SDK calls ``Span.record_exception`` then (``use_span``, ``start_as_current_span``
and ``with span:`` all do). Wrapping that method is the cheapest reliable hook: nothing while
nothing is raised, about 1 us when an exception leaves a span, beside the SDK's own formatting
of the traceback (190 us vs 194 us per exception leaving a span, 1.02x, on the shared 2-core test
machine). A span processor's ``on_end`` only sees the event's strings, never the exception.
What is kept is the span and the local root span of that moment (for the transaction name and
the frozen upstream DSC), so the event processor builds the same ``contexts.trace`` and DSC the
transaction gets.

The first span an exception leaves is the innermost, where it was raised; outer spans it leaves
afterwards do not replace it. It is used only when no span is current at capture: while one is
(a request's error middleware, ``except: capture_exception()`` inside a span), that span wins,
as in sentry_sdk.

Stored in the exception's ``__dict__`` (exceptions take no weak references). A pickled exception
(multiprocessing, a process pool) carries ``None`` in its place: a span holds locks.

    >>> with tracer.start_as_current_span("nightly-job"):   # doctest: +SKIP
    ...     raise ValueError("boom")   # raised_in(exc).span is nightly-job, long after it ended
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import Span

from otel_sentry._internal.roots import local_root

__all__ = ["RaisedIn", "install", "installed", "raised_in", "uninstall"]

_ATTRIBUTE = "__otel_sentry_raised_in__"
# __cause__ / __context__ links followed to find a remembered exception: `raise JobFailed from e`
# outside the span still finds where `e` was raised.
_CHAIN_DEPTH = 8


class RaisedIn:
    """The span an exception first left, and the local root span of that moment (or None)."""

    __slots__ = ("root", "span")

    def __init__(self, span: Span, root: Span | None) -> None:
        self.span = span
        self.root = root

    @property
    def trace_id(self) -> int:
        return self.span.get_span_context().trace_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(None), ())


def raised_in(exc: BaseException | None) -> RaisedIn | None:
    """Where ``exc`` (or the exception it was raised from) left its first span, if known."""
    for _ in range(_CHAIN_DEPTH):
        if exc is None:
            return None
        state = getattr(exc, "__dict__", None)
        found = state.get(_ATTRIBUTE) if isinstance(state, dict) else None
        if isinstance(found, RaisedIn):
            return found
        exc = exc.__cause__ or exc.__context__
    return None


def _remember(exc: BaseException, span: Span) -> None:
    try:
        known = exc.__dict__.get(_ATTRIBUTE)
        trace_id = span.get_span_context().trace_id
        if isinstance(known, RaisedIn) and known.trace_id == trace_id:
            return  # left an inner span of this trace first
        root = local_root()
        if root is not None and root.get_span_context().trace_id != trace_id:
            root = None
        exc.__dict__[_ATTRIBUTE] = RaisedIn(span, root)
    except Exception:  # an exception type without a usable __dict__: left unlinked
        return


_original: Callable[..., None] | None = None


def install() -> None:
    """Wrap the SDK's ``Span.record_exception`` (idempotent); :func:`uninstall` restores it."""
    global _original
    if _original is not None:
        return
    original = Span.record_exception

    @functools.wraps(original)
    def record_exception(self: Span, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        original(self, exception, *args, **kwargs)
        if isinstance(exception, BaseException):
            _remember(exception, self)

    _original = original
    Span.record_exception = record_exception  # type: ignore[method-assign]


def uninstall() -> None:
    global _original
    if _original is not None:
        Span.record_exception = _original  # type: ignore[method-assign]
        _original = None


def installed() -> bool:
    return _original is not None
