"""``keep_error_traces``: send every local transaction that holds an error, whatever the head said.

Head sampling decides when a trace starts, before anyone knows it will fail; at 10% nine failing
requests in ten leave an error event that points at a trace nobody recorded. With this on, the
sampler records the traces it leaves out as well (``RECORD_ONLY``: the ``traceparent`` still
says "not sampled", so downstream services keep the head's decision). Their spans reach the
export thread like any other and wait here, grouped by local root as in segments.py, until the
root ends. A segment is then sent when it holds an error, and dropped and counted as
``sample_rate`` otherwise, exactly as the head would have dropped it.

An error is a span with ERROR status, a span with an ``exception`` event, or a Sentry error
event captured under the trace (:data:`errored`, marked by events.py).

Weighting (docs/design.md, "Keeping the traces that have an error"): Sentry extrapolates each
transaction by ``1 / sample_rate`` from its envelope's DSC (Relay's metrics extraction). A
transaction with an error is now kept with probability 1, head-sampled or not, so every such
transaction says ``sample_rate`` 1.0; the others keep the head's rate. Counts and failure rates
then extrapolate to the truth.

Memory is bounded: held spans have a byte budget (an estimate per span) and wait at most
:data:`HELD_MAX_WAIT` seconds for their root; what the budget lets go early is counted
(:attr:`HeldSegments.shed`) and reported as ``sample_rate`` unless it holds an error.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanContext, StatusCode, TraceFlags

from otel_sentry._internal.sentry.segments import Segment, SegmentBuffer

__all__ = [
    "HELD_MAX_WAIT",
    "KEEP_ATTRIBUTE",
    "ErroredTraces",
    "HeldSegments",
    "errored",
    "forward_kept",
    "segment_has_error",
]

# Set on the spans of a segment kept for its error when they also go out over OTLP: a
# Collector gateway's tail sampling keeps such traces too (collector/README.md).
KEEP_ATTRIBUTE = "otel_sentry.keep_trace"

# Seconds a held child waits for its root; then it is decided on its own.
HELD_MAX_WAIT = 60.0


class ErroredTraces:
    """Trace ids under which an error event was captured (bounded, oldest forgotten first).

    ``mark`` runs on whatever thread captured the event; a dict's single operations are atomic,
    and a trace forgotten under a flood of errors only loses its event-based reason to be kept.
    """

    def __init__(self, cap: int = 20_000) -> None:
        self._cap = cap
        self._ids: OrderedDict[int, None] = OrderedDict()
        self.enabled = False

    def mark(self, trace_id: int) -> None:
        if not self.enabled:
            return
        ids = self._ids
        ids[trace_id] = None
        if len(ids) > self._cap:
            with contextlib.suppress(KeyError):  # emptied meanwhile by another thread
                ids.popitem(last=False)

    def __contains__(self, trace_id: int) -> bool:
        return trace_id in self._ids

    def clear(self) -> None:
        self._ids.clear()


errored = ErroredTraces()


def span_has_error(span: ReadableSpan) -> bool:
    if span.status.status_code is StatusCode.ERROR:
        return True
    return any(event.name == "exception" for event in span.events)


def segment_has_error(segment: Segment) -> bool:
    if segment.root.context.trace_id in errored:
        return True
    return span_has_error(segment.root) or any(span_has_error(c) for c in segment.children)


def estimated_bytes(span: ReadableSpan) -> int:
    """Roughly what a recorded span holds: a fixed part, its attributes and its events."""
    size = 400
    for value in (span.attributes or {}).values():
        size += 64 + (len(value) if isinstance(value, str) else 16)
    for event in span.events:
        size += 200 + 80 * len(event.attributes or ())
    return size


class HeldSegments:
    """The spans of traces the head did not sample, held until each local root ends.

    Runs on the export thread only, like :class:`SegmentBuffer`. :meth:`add` and :meth:`expire`
    return the segments to send (those with an error); the rest are counted, read with
    :meth:`drops_since_last_call`.
    """

    def __init__(
        self,
        max_bytes: int,
        max_wait: float = HELD_MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buffer = SegmentBuffer(
            max_wait=max_wait, clock=clock, size=estimated_bytes, max_bytes=max_bytes
        )
        self._dropped_transactions = 0
        self._dropped_spans = 0
        # Span ids of kept segments: a child that ends after its root was kept goes too.
        self._kept_ids: OrderedDict[int, None] = OrderedDict()

    @property
    def shed(self) -> int:
        """Spans let go before their root ended because the byte budget was full."""
        return self.buffer.shed

    def add(self, span: ReadableSpan) -> Segment | None:
        segment = self.buffer.add(span)
        return self._decide(segment) if segment is not None else None

    def expire(self, flush_all: bool = False) -> list[Segment]:
        return [s for s in self.buffer.expire(flush_all=flush_all) if self._decide(s)]

    def _decide(self, segment: Segment) -> Segment | None:
        segment.head_sampled = False
        parent = segment.root.parent
        late_of_kept = (
            segment.kind == "late" and parent is not None and parent.span_id in self._kept_ids
        )
        if late_of_kept or segment_has_error(segment):
            segment.errored = True
            self._remember(segment)
            return segment
        # One transaction per local root; a late or orphaned piece's root is counted on its own.
        self._dropped_transactions += segment.kind == "complete"
        self._dropped_spans += 1 + len(segment.children) + segment.dropped
        return None

    def _remember(self, segment: Segment) -> None:
        kept = self._kept_ids
        kept[segment.root.context.span_id] = None
        for child in segment.children:
            kept[child.context.span_id] = None
        while len(kept) > self.buffer.remember_sent:
            kept.popitem(last=False)

    def drops_since_last_call(self) -> tuple[int, int]:
        """(transactions, spans) dropped for their sample rate since the last call."""
        out = (self._dropped_transactions, self._dropped_spans)
        self._dropped_transactions = self._dropped_spans = 0
        return out


def forward_kept(segment: Segment, targets: Iterable[SpanProcessor]) -> None:
    """Hand a segment kept for its error to the other destinations (OTLP, the user's exporters).

    Their processors skip unsampled spans (OpenTelemetry's ``BatchSpanProcessor``), so each span
    goes as a sampled copy, marked with :data:`KEEP_ATTRIBUTE` for a Collector's tail sampling.
    """
    copies = [_sampled_copy(span) for span in (segment.root, *segment.children)]
    for target in targets:
        for copy in copies:
            target.on_end(copy)


def _sampled_copy(span: ReadableSpan) -> ReadableSpan:
    ctx = span.context
    sampled = SpanContext(
        ctx.trace_id,
        ctx.span_id,
        ctx.is_remote,
        TraceFlags(ctx.trace_flags | TraceFlags.SAMPLED),
        ctx.trace_state,
    )
    return ReadableSpan(
        name=span.name,
        context=sampled,
        parent=span.parent,
        resource=span.resource,
        attributes={**(span.attributes or {}), KEEP_ATTRIBUTE: True},
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
