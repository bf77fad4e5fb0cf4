"""``OTEL_TRACES_EXPORTER=sentry``: a ``SpanExporter`` for someone else's OpenTelemetry setup.

The SDK's ``BatchSpanProcessor`` calls :meth:`SentrySpanExporter.export` on its own thread; spans
are grouped into one segment per local root (:mod:`~otel_sentry._internal.sentry.segments`), built
into transactions (:mod:`~otel_sentry._internal.sentry.transactions`) and sent synchronously over
the keep-alive transport (:mod:`~otel_sentry._internal.sentry.transport`): the same parts ``init()``
uses, without its queues. ``init()`` itself uses ``TransactionExporter``
(``sentry/span_processor.py``), which also counts and reports every dropped span.

    provider.add_span_processor(BatchSpanProcessor(SentrySpanExporter()))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import sentry_sdk
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_sentry._internal.config import resolve
from otel_sentry._internal.sentry import exit_spool
from otel_sentry._internal.sentry.segments import SegmentBuffer
from otel_sentry._internal.sentry.span_processor import transaction_envelope
from otel_sentry._internal.sentry.transactions import TransactionDefaults
from otel_sentry._internal.sentry.transport import EnvelopeTransport
from otel_sentry._version import __version__

__all__ = ["SentrySpanExporter"]

_log = logging.getLogger("otel_sentry")


class SentrySpanExporter(SpanExporter):
    """``OTEL_TRACES_EXPORTER=sentry``: finished spans -> Sentry transactions, one per local root.

    For an OpenTelemetry setup that is not ours: the SDK's ``BatchSpanProcessor`` calls
    :meth:`export` on its own thread, where spans are grouped, built and sent synchronously over
    our keep-alive transport. It sends with the client of an initialized sentry_sdk if there is
    one, else with a private client built from ``SENTRY_DSN`` (no integrations, no global
    state). ``init()`` does not use this class: its span processor does the same work with
    bounded queues and client reports for every drop.
    """

    def __init__(self, dsn: str | None = None) -> None:
        settings = resolve({"dsn": dsn})
        parts = settings.dsn_parts
        self._defaults = TransactionDefaults(
            release=settings.release,
            environment=settings.environment,
            public_key=parts.public_key if parts else None,
            org_id=settings.org_id or (parts.org_id if parts else None),
            sdk={"name": "sentry.python.otel_sentry", "version": __version__},
        )
        self._buffer = SegmentBuffer()
        self._lock = threading.Lock()
        self._client: Any = None
        active = sentry_sdk.get_client()
        if dsn is None and active.is_active():
            self._client = active
        elif settings.sends_to_sentry:
            self._client = sentry_sdk.Client(
                dsn=settings.dsn,
                environment=settings.environment,
                release=settings.release,
                transport=EnvelopeTransport,
                default_integrations=False,
                auto_enabling_integrations=False,
                traces_sample_rate=None,
            )
            transport = self._client.transport
            if isinstance(transport, EnvelopeTransport):
                transport.keep_at_exit(
                    exit_spool.choose(settings.dsn, settings.spool_dir, settings.spool_at_exit)
                )
        else:
            _log.warning("otel-sentry: SentrySpanExporter has no SENTRY_DSN: nothing is sent")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        transport = self._client.transport if self._client is not None else None
        if transport is None:
            return SpanExportResult.SUCCESS
        with self._lock:  # the batch processor's thread, or force_flush on another
            segments = [s for s in map(self._buffer.add, spans) if s is not None]
            segments += self._buffer.expire()
        ours = transport if isinstance(transport, EnvelopeTransport) else None
        with ours.batch() if ours is not None else nullcontext():  # compressed together
            for segment in segments:
                envelope = transaction_envelope(segment, self._defaults, transport)
                if envelope is None:
                    continue
                if ours is not None:
                    ours.send(envelope)
                else:
                    transport.capture_envelope(envelope)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with self._lock:
            segments = self._buffer.expire(flush_all=True)
        transport = client.transport
        if transport is not None:
            for segment in segments:
                envelope = transaction_envelope(segment, self._defaults, transport)
                if envelope is not None:
                    transport.capture_envelope(envelope)
        if client is not sentry_sdk.get_client():
            client.close(timeout=2.0)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        client = self._client
        if client is None:
            return True
        client.flush(timeout=timeout_millis / 1000)
        transport = client.transport
        if isinstance(transport, EnvelopeTransport):
            return transport.drain(timeout_millis / 1000)
        return True
