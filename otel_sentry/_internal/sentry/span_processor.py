"""The span processor that turns finished spans into Sentry transactions, off the request thread.

On the request thread ``on_end`` only appends the span to a bounded deque (no I/O, no
serialization, no lock). A worker thread groups spans into segments, builds each transaction,
serializes it once and hands the envelope to sentry_sdk's transport, which owns rate limits,
client reports, compression and retries. Every span that cannot be kept is counted and reported
as a client report with its reason: ``queue_overflow`` here, ``buffer_overflow`` over the
1000-span cap, ``sample_rate`` for roots the sampler dropped, ``backpressure`` for roots shed
while the process fell behind (otel_sentry/pressure.py), ``before_send`` when a hook drops a
transaction.

We don't reuse OpenTelemetry's ``BatchSpanProcessor``: it only logs the spans it drops, and the
grouping into transactions must keep state across batches anyway.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from typing import Any

import sentry_sdk
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from otel_sentry._internal import scrub
from otel_sentry._internal.sentry.encode import dumps
from otel_sentry._internal.sentry.hooks import scrub_event
from otel_sentry._internal.sentry.keep_errors import (
    HeldSegments,
    forward_kept,
    segment_has_error,
)
from otel_sentry._internal.sentry.limits import MAX_ITEM_BYTES, fit_transaction
from otel_sentry._internal.sentry.noise import NoiseFilter
from otel_sentry._internal.sentry.profiles import ProfileRecorder
from otel_sentry._internal.sentry.sampler import SentrySampler
from otel_sentry._internal.sentry.segments import Segment, SegmentBuffer, is_local_root
from otel_sentry._internal.sentry.spool import transaction_item
from otel_sentry._internal.sentry.transactions import TransactionDefaults, build_transaction
from otel_sentry._internal.sentry.transport import EnvelopeTransport

__all__ = ["TransactionExporter", "transaction_envelope"]

_log = logging.getLogger("otel_sentry")

TransportGetter = Callable[[], "Transport | None"]
BeforeSend = Callable[[dict[str, Any], dict[str, Any]], "dict[str, Any] | None"]


def _current_transport() -> Transport | None:
    import sentry_sdk

    return sentry_sdk.get_client().transport


class TransactionExporter(SpanProcessor):
    def __init__(
        self,
        defaults: TransactionDefaults,
        *,
        sampler: SentrySampler | None = None,
        transport: TransportGetter = _current_transport,
        before_send_transaction: BeforeSend | None = None,
        noise: NoiseFilter | None = None,
        max_queue: int = 20_000,
        batch_size: int = 256,
        schedule_delay: float = 0.5,
        buffer: SegmentBuffer | None = None,
        profiles: ProfileRecorder | None = None,
        held: HeldSegments | None = None,
    ) -> None:
        self.defaults = defaults
        # keep_error_traces: the spans of unsampled traces wait here until their root ends.
        self.held = held
        # ...and the other destinations' processors get the segments kept for an error.
        self.forward_kept: tuple[SpanProcessor, ...] = ()
        self._shed_reported = 0
        self._shed_logged_at = -60.0
        self.profiles = profiles
        self.sampler = sampler
        self._transport = transport
        self._before_send = before_send_transaction
        self._noise = noise
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._delay = schedule_delay
        self._buffer = buffer or SegmentBuffer()
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._overflow = 0
        self._overflow_roots = 0
        self._shutdown = False
        self._start_worker()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    # -- request thread ---------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._overflow += 1  # counted here, reported from the worker
            if is_local_root(span):  # a whole transaction, not one of its spans
                self._overflow_roots += 1
            return
        queue.append(span)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------
    def _start_worker(self) -> None:
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._flush_requested = 0
        self._flush_done = 0
        self._thread = threading.Thread(target=self._run, name="otel-sentry-export", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # The parent's worker thread does not exist in the child; its queued spans belong to
        # the parent, which exports them.
        self._queue = collections.deque()
        self._buffer = SegmentBuffer(
            self._buffer.max_children, self._buffer.max_pending, self._buffer.max_wait
        )
        if self.held is not None:
            held = self.held.buffer
            self.held = HeldSegments(held.max_bytes, held.max_wait)
        self._start_worker()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self._shutdown or not self._thread.is_alive():
            return False
        deadline = time.monotonic() + timeout_millis / 1000
        with self._flushed:
            self._flush_requested += 1
            ticket = self._flush_requested
            self._wake.set()
            if not self._flushed.wait_for(
                lambda: self._flush_done >= ticket, timeout=timeout_millis / 1000
            ):
                return False
        transport = self._transport()
        if isinstance(transport, EnvelopeTransport):
            return transport.wait_idle(max(0.0, deadline - time.monotonic()))
        return True

    # How long shutdown() may take in all; setup.shutdown() lowers it to what its budget has left.
    shutdown_timeout = 10.0
    # Beyond it, seconds the worker may go on building the transactions still queued.
    build_grace = 5.0

    def shutdown(self) -> None:
        if self._shutdown:
            return
        deadline = time.monotonic() + self.shutdown_timeout
        self.force_flush(int(self.shutdown_timeout * 1000))
        self._shutdown = True
        self._wake.set()
        # Past the budget the worker only builds what is left (sending never blocks: the
        # transport keeps what it cannot send for the next start), so it gets a little more.
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + self.build_grace)
        if self._thread.is_alive():
            self._count_unbuilt()

    def _count_unbuilt(self) -> None:
        """The worker is still building at exit: what it will not finish is counted, not lost."""
        # Taken one by one from the deque the worker still reads: each span is the worker's or
        # ours, never both.
        queue, left = self._queue, 0
        while True:
            try:
                span = queue.popleft()
            except IndexError:
                break
            left += 1
            self._overflow += 1
            self._overflow_roots += is_local_root(span)
        self._report_drops()
        _log.warning("otel-sentry: exiting with %d spans not yet exported; counted as lost", left)

    # -- worker thread ------------------------------------------------------------------------
    def _run(self) -> None:
        token = otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )
        # A scope of its own: whatever sentry_sdk's integrations record while we send (the
        # stdlib integration's breadcrumbs for our own HTTP calls) stays on this thread.
        scope = sentry_sdk.isolation_scope()
        scope.__enter__()
        try:
            while not self._shutdown:
                self._wake.wait(self._delay)
                self._wake.clear()
                with self._flushed:
                    ticket = self._flush_requested
                self._cycle(flush_all=False)
                if ticket > self._flush_done:
                    with self._flushed:
                        self._flush_done = ticket
                        self._flushed.notify_all()
            self._cycle(flush_all=True)
        finally:
            scope.__exit__(None, None, None)
            otel_context.detach(token)

    def _cycle(self, flush_all: bool) -> None:
        try:
            transport = self._transport()
            # This cycle's envelopes are compressed together, a batch per call (compress.py).
            ours = transport if isinstance(transport, EnvelopeTransport) else None
            with ours.batch() if ours is not None else nullcontext():
                self._export_queued(flush_all)
        except Exception:  # the export thread must survive anything a span can contain
            _log.exception("otel-sentry: exporting spans failed; continuing")

    def _export_queued(self, flush_all: bool) -> None:
        queue = self._queue
        shedder = self.sampler.shedder if self.sampler is not None else None
        if shedder is not None:
            shedder.report_backlog(len(queue), self._max_queue)
        add = self._buffer.add
        send = self._send
        pop = queue.popleft
        held = self.held
        while True:
            try:
                span = pop()
            except IndexError:  # empty (at exit, shutdown may be taking from it too)
                break
            if held is not None and not span.context.trace_flags.sampled:
                segment = held.add(span)  # only when it holds an error
                if segment is not None:
                    self._send_kept(segment)
            else:
                segment = add(span)
                if segment is not None:
                    send(segment)
        for segment in self._buffer.expire(flush_all=flush_all):
            send(segment)
        if held is not None:
            for segment in held.expire(flush_all=flush_all):
                self._send_kept(segment)
        self._report_drops()

    def _report_drops(self) -> None:
        transport = self._transport()
        if transport is None:
            return
        if self._overflow:
            n, self._overflow = self._overflow, 0
            roots, self._overflow_roots = self._overflow_roots, 0
            transport.record_lost_event("queue_overflow", "span", quantity=n)
            if roots:
                transport.record_lost_event("queue_overflow", "transaction", quantity=roots)
        if self.sampler is not None:
            n = self.sampler.drops_since_last_call()
            if n:
                transport.record_lost_event("sample_rate", "transaction", quantity=n)
                transport.record_lost_event("sample_rate", "span", quantity=n)
            shedder = self.sampler.shedder
            n = shedder.drops_since_last_call() if shedder is not None else 0
            if n:
                transport.record_lost_event("backpressure", "transaction", quantity=n)
                transport.record_lost_event("backpressure", "span", quantity=n)
        if self.held is not None:
            self._report_held(transport)

    def _report_held(self, transport: Transport) -> None:
        held = self.held
        assert held is not None
        transactions, spans = held.drops_since_last_call()
        if transactions:
            transport.record_lost_event("sample_rate", "transaction", quantity=transactions)
        if spans:
            transport.record_lost_event("sample_rate", "span", quantity=spans)
        now = time.monotonic()
        if held.shed > self._shed_reported and now - self._shed_logged_at >= 60:
            self._shed_logged_at = now
            _log.warning(
                "otel-sentry: keep_error_traces: %d unsampled spans let go before their "
                "transaction ended (keep_error_traces_max_mb is full); raise it to keep them",
                held.shed - self._shed_reported,
            )
            self._shed_reported = held.shed

    def _send_kept(self, segment: Segment) -> None:
        """A segment the head left out, kept for its error: to Sentry and the other destinations."""
        if self.forward_kept:
            forward_kept(segment, self.forward_kept)
        self._send(segment)

    def _send(self, segment: Segment) -> None:
        transport = self._transport()
        if transport is None:
            return
        if self.held is not None and segment.head_sampled and segment_has_error(segment):
            segment.errored = True  # kept whatever the head said: weighted 1 (keep_errors.py)
        envelope = transaction_envelope(
            segment, self.defaults, transport, self._before_send, self._noise, self.profiles
        )
        if envelope is None:
            return
        if isinstance(transport, EnvelopeTransport):
            transport.send(envelope)  # never blocks: sent from the transport's I/O thread
        else:
            transport.capture_envelope(envelope)  # someone else's transport: its own queue


def transaction_envelope(
    segment: Segment,
    defaults: TransactionDefaults,
    transport: Transport,
    before_send: BeforeSend | None = None,
    noise: NoiseFilter | None = None,
    profiles: ProfileRecorder | None = None,
) -> Envelope | None:
    """The envelope for one segment, or None when noise or ``before_send`` dropped it (counted)."""
    event, dsc = build_transaction(segment, defaults)
    if noise is not None and noise.drops_transaction(event) is not None:
        transport.record_lost_event("event_processor", "transaction")
        transport.record_lost_event("event_processor", "span", quantity=len(event["spans"]) + 1)
        return None
    if segment.dropped:
        transport.record_lost_event("buffer_overflow", "span", quantity=segment.dropped)
    if before_send is not None:
        otel = event["contexts"].get("otel")
        if isinstance(otel, dict) and isinstance(otel.get("resource"), dict):
            # Converted once per process and shared (transactions.py): the hook gets its own.
            otel["resource"] = dict(otel["resource"])
        try:
            kept = before_send(event, {})
        except Exception:
            _log.exception("otel-sentry: before_send_transaction raised; sending unchanged")
            kept = event
        if kept is None:
            transport.record_lost_event("before_send", "transaction")
            transport.record_lost_event("before_send", "span", quantity=len(event["spans"]) + 1)
            return None
        event = kept
    # Scrubbed last, after the user's hook, in the export thread: what leaves is what was checked.
    event = scrub_event(scrub.current(), event)
    headers = {
        "event_id": event["event_id"],
        "sent_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "trace": dsc,
    }
    if defaults.sdk:
        headers["sdk"] = dict(defaults.sdk)
    body = dumps(event)
    if len(body) > MAX_ITEM_BYTES:  # Relay would refuse it whole
        dropped = fit_transaction(event, len(body))
        if dropped:
            transport.record_lost_event("buffer_overflow", "span", quantity=dropped)
        body = dumps(event)
    items = [transaction_item(body, len(event.get("spans") or ()))]
    profile = profiles.envelope_item(segment.root, event) if profiles is not None else None
    if profile is not None:
        items.insert(0, profile)  # where sentry_sdk's client puts it
    return Envelope(headers=headers, items=items)
