"""sentry_sdk's tracing API on OpenTelemetry spans: code written for sentry_sdk keeps working.

``init()`` turns sentry_sdk's own tracing off (sentry/client.py), so without this module
``sentry_sdk.start_transaction()``, ``start_span()``, ``@sentry_sdk.trace`` and
``get_current_span()`` would record nothing. :func:`install` points those entry points at the
global tracer provider instead: every span they start is an OpenTelemetry span, sampled by the
provider's sampler, nested with the instrumentations' spans both ways (entering one attaches
it to the OTel context), exported with them in the same transaction::

    with sentry_sdk.start_transaction(op="task", name="nightly import"):  # a local root span
        with sentry_sdk.start_span(op="db", name="load rows") as span:    # its child
            span.set_tag("batch", "7")                                    # -> sentry.tag.batch

The objects they return are facades over OTel spans (sentry/bridged_spans.py): op, name, tags,
data, status and measurements become attributes and events that transactions.py maps back.

What sentry_sdk 2.x does, kept here: ``start_transaction()`` always starts a new trace (one
started inside another is its own root, even inside a request span), unless it is given what
``continue_trace()`` returned; ``start_span()`` and ``@trace`` without an active span record
nothing. Spans whose ``origin`` is ``auto.*`` come from sentry_sdk's own integrations, whose job
the OpenTelemetry instrumentations do here: they keep sentry_sdk's behaviour (not sent), or
every ``requests.get`` and Django query would be recorded twice.

Written here because neither library has it: sentry_sdk 2.x maps its API onto OTel only in its
unreleased 3.0 line (the "potel" branch, which replaces its scopes too), and the OTel SDK has no
sentry_sdk facade. Four entry points are patched, everything else calls them:
``Scope.start_span`` (``sentry_sdk.start_span``), ``Scope.start_transaction``,
``Scope.continue_trace``, and ``tracing_utils.get_current_span`` (``@trace`` and
``sentry_sdk.get_current_span()`` look it up there at call time); plus the deprecated
module-level ``set_measurement``. :func:`uninstall` puts them back. sentry_sdk's scopes are left
alone: the OTel context says which span is current, so ``scope.span`` stays None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sentry_sdk
import sentry_sdk.api
import sentry_sdk.tracing_utils
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from sentry_sdk.consts import INSTRUMENTER
from sentry_sdk.scope import Scope
from sentry_sdk.tracing import Transaction
from sentry_sdk.tracing_utils import normalize_incoming_data

from otel_sentry._internal import roots
from otel_sentry._internal.sentry.bridged_spans import (
    BridgedSpan,
    is_auto,
    start_child,
    start_root,
    use_tracer,
    wrap,
)
from otel_sentry._internal.sentry.transactions import MEASUREMENT_UNIT, MEASUREMENT_VALUE

__all__ = ["ContinuedTransaction", "install", "installed", "uninstall"]

_originals: dict[str, Any] = {}


def _current_local_span() -> trace.Span | None:
    span = trace.get_current_span()
    ctx = span.get_span_context()
    return span if ctx.is_valid and not ctx.is_remote else None


def _scope_start_span(self: Scope, instrumenter: str = INSTRUMENTER.SENTRY, **kwargs: Any) -> Any:
    current = _current_local_span() if instrumenter == INSTRUMENTER.SENTRY else None
    if current is None or is_auto(kwargs):
        # No active span: sentry_sdk's own span, which is never sent (as before init()).
        return _originals["start_span"](self, instrumenter, **kwargs)
    return start_child(None, kwargs)  # the current context: its span is the parent


class ContinuedTransaction(Transaction):
    """What ``continue_trace()`` returns: sentry_sdk's transaction, plus the OTel context the
    project's propagator extracted from the same headers, which ``start_transaction()`` uses."""

    __slots__ = ("otel_context",)

    otel_context: Context


def _scope_continue_trace(
    self: Scope,
    environ_or_headers: dict[str, Any],
    op: str | None = None,
    name: str | None = None,
    source: str | None = None,
    origin: str = "manual",
) -> Any:
    # sentry_sdk's own first: it sets the scope's propagation context, which errors captured
    # outside any span are linked with.
    native = _originals["continue_trace"](self, environ_or_headers, op, name, source, origin)
    if origin.startswith("auto"):
        return native
    continued = ContinuedTransaction(
        name=native.name,
        op=native.op,
        origin=origin,
        source=native.source,
        baggage=native._baggage,
        parent_sampled=native.parent_sampled,
        trace_id=native.trace_id,
        parent_span_id=native.parent_span_id,
        same_process_as_parent=False,
    )
    headers = normalize_incoming_data(dict(environ_or_headers))
    continued.otel_context = propagate.extract(headers, context=Context())
    return continued


def _scope_start_transaction(
    self: Scope,
    transaction: Any = None,
    instrumenter: str = INSTRUMENTER.SENTRY,
    custom_sampling_context: Any = None,
    **kwargs: Any,
) -> Any:
    if isinstance(transaction, BridgedSpan):
        return transaction  # started already
    if (
        instrumenter != INSTRUMENTER.SENTRY
        or is_auto(kwargs)
        or (transaction is not None and not isinstance(transaction, Transaction))
        or str(getattr(transaction, "origin", "")).startswith("auto")
    ):
        # An integration's transaction, or a NoOpSpan: sentry_sdk's own (not sent, as before).
        return _originals["start_transaction"](
            self, transaction, instrumenter, custom_sampling_context, **kwargs
        )
    if transaction is None:
        # A new trace, as in sentry_sdk 2.x: never a child of the span that is current.
        return start_root(
            Context(),
            kwargs.get("op"),
            kwargs.get("name") or kwargs.get("description"),
            kwargs.get("source"),
            kwargs.get("start_timestamp"),
        )
    if isinstance(transaction, ContinuedTransaction):
        parent = transaction.otel_context
    elif transaction.parent_span_id:
        # Built by hand or by the deprecated Transaction.continue_from_headers(): its upstream,
        # read back through the project's propagator like any incoming header.
        parent = propagate.extract(_headers_of(transaction), context=Context())
    else:
        parent = Context()
    return start_root(
        parent, transaction.op, transaction.name, transaction.source, transaction.start_timestamp
    )


def _headers_of(transaction: Transaction) -> dict[str, str]:
    sampled = transaction.parent_sampled
    flag = "" if sampled is None else f"-{int(sampled)}"
    headers = {"sentry-trace": f"{transaction.trace_id}-{transaction.parent_span_id}{flag}"}
    baggage = transaction._baggage.serialize() if transaction._baggage is not None else ""
    if baggage:
        headers["baggage"] = baggage
    return headers


def _get_current_span(scope: Scope | None = None) -> Any:
    current = _current_local_span()
    if current is None:
        return _originals["get_current_span"](scope)
    return wrap(current)


def _set_measurement(name: str, value: float, unit: str = "") -> None:
    """``sentry_sdk.set_measurement``: on the transaction (local root) of the current span."""
    current = _current_local_span()
    if current is None:
        _originals["set_measurement"](name, value, unit)
        return
    root = roots.local_root()
    if root is not None and root.is_recording():
        root.add_event(name, {MEASUREMENT_VALUE: value, MEASUREMENT_UNIT: unit or ""})


# -- install / uninstall ---------------------------------------------------------------------

_PATCHES: tuple[tuple[Any, str, Callable[..., Any]], ...] = (
    (Scope, "start_span", _scope_start_span),
    (Scope, "start_transaction", _scope_start_transaction),
    (Scope, "continue_trace", _scope_continue_trace),
    # @sentry_sdk.trace and sentry_sdk.get_current_span() both look it up here at call time.
    (sentry_sdk.tracing_utils, "get_current_span", _get_current_span),
)


def install(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Route sentry_sdk's tracing API to ``tracer_provider`` (the global one by default).

    Idempotent; ``init()`` calls it when traces go to Sentry and a Sentry client is set up.
    """
    provider = tracer_provider or trace.get_tracer_provider()
    use_tracer(provider.get_tracer("otel_sentry.sentry_sdk"))
    if _originals:
        return
    for owner, attribute, replacement in _PATCHES:
        _originals[attribute] = getattr(owner, attribute)
        setattr(owner, attribute, replacement)
    if hasattr(sentry_sdk.api, "set_measurement"):  # deprecated in 2.28, gone in 3.x
        _originals["set_measurement"] = sentry_sdk.api.set_measurement
        sentry_sdk.api.set_measurement = _set_measurement
        if getattr(sentry_sdk, "set_measurement", None) is _originals["set_measurement"]:
            sentry_sdk.set_measurement = _set_measurement


def uninstall() -> None:
    """sentry_sdk's own tracing API again (``shutdown()``)."""
    use_tracer(None)
    if not _originals:
        return
    for owner, attribute, _replacement in _PATCHES:
        setattr(owner, attribute, _originals[attribute])
    original = _originals.get("set_measurement")
    if original is not None:
        sentry_sdk.api.set_measurement = original
        if getattr(sentry_sdk, "set_measurement", None) is _set_measurement:
            sentry_sdk.set_measurement = original
    _originals.clear()


def installed() -> bool:
    """Whether sentry_sdk's tracing API currently makes OTel spans."""
    return bool(_originals)
