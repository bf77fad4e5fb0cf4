"""The span objects sentry_sdk's tracing API hands out under ``init()``: facades over OTel spans.

A :class:`BridgedSpan` is what ``sentry_sdk.start_span()``, ``Span.start_child()``, ``@trace``
and ``get_current_span()`` return once sentry/tracing_api.py is installed; a
:class:`BridgedTransaction` is what ``start_transaction()`` returns. Each writes to one
OpenTelemetry span, in the vocabulary transactions.py reads back:

- op, description/name, transaction source: ``sentry.op``, ``sentry.description``,
  ``sentry.source`` (semantics.py lets them win over what the span's other attributes suggest);
- tags: ``sentry.tag.<key>`` attributes (the transaction's tags, or a child span's);
- data: attributes, with dicts and mixed lists as JSON text (OTel has no nested values);
- a Sentry status (``not_found``, ``cancelled``...): the description of an ERROR status;
- a measurement: a span event named after it with ``sentry.measurement_value``/``_unit``
  attributes, as @sentry/node records it.

A facade holds the OTel span and three small fields; starting one is one ``start_span`` plus the
attributes above. sentry_sdk's own ``Span`` also records its thread, profiler id and a span
recorder per span; none of that is needed when the OTel SDK keeps the spans.

    span = start_child(None, {"op": "db", "name": "load rows"})   # child of the current span
    with span:                                                      # ... and current itself
        span.set_tag("batch", "7")
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import Status, StatusCode
from sentry_sdk.consts import INSTRUMENTER
from sentry_sdk.tracing import NoOpSpan
from sentry_sdk.tracing_utils import Baggage
from sentry_sdk.utils import should_be_treated_as_error

from otel_sentry._internal import roots
from otel_sentry._internal.context import TAG_PREFIX
from otel_sentry._internal.sentry.semantics import status_from_http
from otel_sentry._internal.sentry.transactions import MEASUREMENT_UNIT, MEASUREMENT_VALUE

__all__ = [
    "BridgedSpan",
    "BridgedTransaction",
    "is_auto",
    "start_child",
    "start_root",
    "use_tracer",
    "wrap",
]

_OP = "sentry.op"
_DESCRIPTION = "sentry.description"
_SOURCE = "sentry.source"
_HTTP_STATUS = "http.response.status_code"  # sentry_sdk's SPANDATA.HTTP_STATUS_CODE
_PRIMITIVES = (str, bool, int, float)
_ONE_PRIMITIVE = frozenset(_PRIMITIVES)

_tracer: trace.Tracer | None = None


def use_tracer(tracer: trace.Tracer | None) -> None:
    """The tracer new spans come from (None: the global provider's, looked up per span)."""
    global _tracer
    _tracer = tracer


def _tracer_or_global() -> trace.Tracer:
    tracer = _tracer
    if tracer is None:
        tracer = trace.get_tracer("otel_sentry.sentry_sdk")
    return tracer


def _attribute(value: Any) -> Any:
    """``value`` as an OTel attribute: primitives and homogeneous lists as they are, anything
    else as JSON text (OTel refuses dicts and mixed lists; sentry_sdk would send them nested)."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)):
        kinds = {type(v) for v in value}
        if len(kinds) <= 1 and kinds <= _ONE_PRIMITIVE:
            return tuple(value)
    return json.dumps(value, default=repr, ensure_ascii=False)


def _ns(timestamp: datetime | float | None) -> int | None:
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        return int(timestamp.timestamp() * 1e9)
    return int(timestamp * 1e9)


def is_auto(kwargs: Mapping[str, Any]) -> bool:
    """Started by one of sentry_sdk's integrations (``origin="auto.*"``), not by user code."""
    origin = kwargs.get("origin")
    return isinstance(origin, str) and origin.startswith("auto")


class BridgedSpan:
    """A sentry_sdk ``Span`` whose data lives on an OpenTelemetry span.

    Made by ``sentry_sdk.start_span()``, ``Span.start_child()`` and ``get_current_span()``
    (which wraps whatever OTel span is current, an instrumentation's included). Like sentry_sdk's
    spans, it is not thread-safe: one span, one thread (or task) at a time.
    """

    __slots__ = ("_ended", "_op", "_otel", "_restore_root", "_status", "_token")

    def __init__(self, otel_span: trace.Span, op: str | None = None) -> None:
        """``otel_span``: the span to write to; ``op``: its ``sentry.op``, when already set
        (kept here so reading it back needs no attribute lookup)."""
        self._otel = otel_span
        self._op = op
        self._status: str | None = None
        self._token: contextvars.Token[Context] | None = None
        # (previous local root,) for a root: restored when it exits (see __exit__).
        self._restore_root: tuple[SdkSpan | None] | None = None
        self._ended = False

    # -- identity ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        # get_current_span() wraps the current OTel span anew on every call.
        return isinstance(other, BridgedSpan) and other._otel is self._otel

    def __hash__(self) -> int:
        return id(self._otel)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}(op={self.op!r}, description={self.description!r}, "
            f"trace_id={self.trace_id!r}, span_id={self.span_id!r}, sampled={self.sampled!r})>"
        )

    @property
    def otel_span(self) -> trace.Span:
        """The OpenTelemetry span this facade writes to."""
        return self._otel

    @property
    def trace_id(self) -> str:
        return f"{self._otel.get_span_context().trace_id:032x}"

    @property
    def span_id(self) -> str:
        return f"{self._otel.get_span_context().span_id:016x}"

    @property
    def parent_span_id(self) -> str | None:
        parent = self._otel.parent if isinstance(self._otel, ReadableSpan) else None
        return f"{parent.span_id:016x}" if parent is not None else None

    @property
    def sampled(self) -> bool:
        return bool(self._otel.get_span_context().trace_flags.sampled)

    @property
    def origin(self) -> str:
        return "manual"

    @property
    def containing_transaction(self) -> BridgedTransaction | None:
        root = roots.local_root()
        if root is None or root.context.trace_id != self._otel.get_span_context().trace_id:
            return None
        return BridgedTransaction(root)

    # -- op, description, status -------------------------------------------------------------
    def _read(self, key: str) -> Any:
        attributes = getattr(self._otel, "attributes", None)
        return attributes.get(key) if attributes else None

    @property
    def op(self) -> str | None:
        return self._op if self._op is not None else self._read(_OP)

    @op.setter
    def op(self, value: str | None) -> None:
        self._op = value
        if value is not None:
            self._otel.set_attribute(_OP, value)

    @property
    def description(self) -> str | None:
        value = self._read(_DESCRIPTION)
        return value if value is not None else getattr(self._otel, "name", None)

    @description.setter
    def description(self, value: str | None) -> None:
        if value is not None:
            self._otel.set_attribute(_DESCRIPTION, value)
            self._otel.update_name(value)

    name = description

    @property
    def status(self) -> str | None:
        return self._status

    def set_status(self, value: str) -> None:
        self._status = value
        if value == "ok":
            self._otel.set_status(StatusCode.OK)
        else:
            # transactions.py reads a Sentry status back from the description.
            self._otel.set_status(Status(StatusCode.ERROR, value))

    def set_http_status(self, http_status: int) -> None:
        self.set_tag("http.status_code", str(http_status))
        self.set_data(_HTTP_STATUS, http_status)
        self.set_status(status_from_http(http_status))

    def is_success(self) -> bool:
        return self._status == "ok"

    # -- tags, data, measurements ------------------------------------------------------------
    def set_tag(self, key: str, value: Any) -> None:
        self._otel.set_attribute(
            TAG_PREFIX + key, value if isinstance(value, _PRIMITIVES) else str(value)
        )

    def set_data(self, key: str, value: Any) -> None:
        if value is not None:  # OTel has no null attribute
            self._otel.set_attribute(key, _attribute(value))

    def update_data(self, data: Mapping[str, Any]) -> None:
        for key, value in data.items():
            self.set_data(key, value)

    def set_flag(self, flag: str, result: bool) -> None:
        self._otel.set_attribute(flag, result)

    def set_measurement(self, name: str, value: float, unit: str = "") -> None:
        self._otel.add_event(name, {MEASUREMENT_VALUE: value, MEASUREMENT_UNIT: unit or ""})

    def set_thread(self, thread_id: int | None, thread_name: str | None) -> None:
        if thread_id is not None:
            self.set_data("thread.id", str(thread_id))
            if thread_name is not None:
                self.set_data("thread.name", thread_name)

    def set_context(self, key: str, value: Mapping[str, Any]) -> None:
        """Primitive values as ``<key>.<name>`` data (there is no per-span context in OTel)."""
        for name, item in value.items():
            if isinstance(item, _PRIMITIVES):
                self._otel.set_attribute(f"{key}.{name}", item)

    # -- children ----------------------------------------------------------------------------
    def start_child(self, instrumenter: str = INSTRUMENTER.SENTRY, **kwargs: Any) -> Any:
        """A child of this span (whichever span is current), as ``Span.start_child``."""
        if instrumenter != INSTRUMENTER.SENTRY or is_auto(kwargs):
            return NoOpSpan()
        return start_child(trace.set_span_in_context(self._otel), kwargs)

    # -- propagation -------------------------------------------------------------------------
    def iter_headers(self) -> Iterator[tuple[str, str]]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self._otel))
        yield from carrier.items()

    def to_traceparent(self) -> str:
        return f"{self.trace_id}-{self.span_id}-{1 if self.sampled else 0}"

    def to_baggage(self) -> Baggage | None:
        header = dict(self.iter_headers()).get("baggage")
        return Baggage.from_incoming_header(header) if header else None

    def get_trace_context(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "op": self.op,
            "description": self.description,
            "origin": self.origin,
        }
        if self.parent_span_id is not None:
            out["parent_span_id"] = self.parent_span_id
        if self._status:
            out["status"] = self._status
        return out

    # -- lifetime ----------------------------------------------------------------------------
    def __enter__(self) -> Any:
        # While entered, this span is the OTel context's current span: instrumented calls and
        # further sentry_sdk spans inside become its children.
        self._token = otel_context.attach(trace.set_span_in_context(self._otel))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and should_be_treated_as_error(exc_type, exc):
            if self._otel.is_recording():
                self._otel.record_exception(exc)
            self.set_status("internal_error")
        self.finish()
        token, self._token = self._token, None
        if token is not None:
            otel_context.detach(token)
        if self._restore_root is not None:
            # The local root this root replaced (a request's span) is the local root again.
            previous, self._restore_root = self._restore_root, None
            roots._local_root.set(previous[0])

    def finish(
        self,
        scope: Any = None,
        end_timestamp: datetime | float | None = None,
        *,
        hub: Any = None,
    ) -> str | None:
        """End the span (once); sent with its transaction. Always None: there is no event id
        before the transaction is built, off this thread."""
        if not self._ended:
            self._ended = True
            self._otel.end(_ns(end_timestamp))
        return None


class BridgedTransaction(BridgedSpan):
    """A sentry_sdk ``Transaction``: the local root span of a new or continued trace."""

    __slots__ = ()

    @property
    def containing_transaction(self) -> BridgedTransaction:
        return self

    @property
    def name(self) -> str | None:
        return self.description

    @name.setter
    def name(self, value: str | None) -> None:
        self.description = value

    @property
    def source(self) -> str:
        value = self._read(_SOURCE)
        return value if isinstance(value, str) else "custom"

    @source.setter
    def source(self, value: str) -> None:
        self._otel.set_attribute(_SOURCE, str(getattr(value, "value", value)))

    def get_baggage(self) -> Baggage | None:
        return self.to_baggage()


# -- starting spans ------------------------------------------------------------------------------


def _name(kwargs: Mapping[str, Any]) -> str | None:
    value = kwargs.get("name") or kwargs.get("description")
    return value if isinstance(value, str) else None


def start_child(parent: Context | None, kwargs: Mapping[str, Any]) -> BridgedSpan:
    """A span as ``Span(**kwargs)`` describes it, child of ``parent``'s span (None: the current
    context's); sampled as its parent was."""
    op = kwargs.get("op")
    description = _name(kwargs)
    attributes: dict[str, Any] = {}
    if op:
        attributes[_OP] = op
    if description:
        attributes[_DESCRIPTION] = description
    span = _tracer_or_global().start_span(
        description or op or "span",
        context=parent,
        attributes=attributes,
        start_time=_ns(kwargs.get("start_timestamp")),
    )
    bridged = BridgedSpan(span, op)
    status = kwargs.get("status")
    if status:
        bridged.set_status(status)
    return bridged


def start_root(
    parent: Context, op: str | None, name: str | None, source: Any, start: Any
) -> BridgedTransaction:
    """A transaction: a local root span under ``parent`` (an empty context for a new trace, or
    an extracted remote parent), sampled by the provider's sampler as any root is."""
    attributes: dict[str, Any] = {_SOURCE: str(getattr(source, "value", source or "custom"))}
    if op:
        attributes[_OP] = op
    name = name or "<unlabeled transaction>"  # sentry_sdk's name for a nameless one
    attributes[_DESCRIPTION] = name
    previous_root = roots.local_root()
    span = _tracer_or_global().start_span(
        name, context=parent, attributes=attributes, start_time=_ns(start)
    )
    bridged = BridgedTransaction(span, op)
    bridged._restore_root = (previous_root,)
    return bridged


def wrap(span: trace.Span) -> BridgedSpan:
    """A facade for an OTel span started elsewhere (``get_current_span()``)."""
    if isinstance(span, ReadableSpan) and (span.parent is None or span.parent.is_remote):
        return BridgedTransaction(span)
    return BridgedSpan(span)
