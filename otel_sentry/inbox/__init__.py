"""A local Sentry-compatible ingest: the project's test ingest and the demo's default backend.

It accepts envelopes (``/api/<id>/envelope/`` and Spotlight's ``/stream``) and OTLP/HTTP
(``/v1/traces``, ``/api/<id>/integration/otlp/v1/traces``), parses them as strictly as Relay,
validates events with Relay's normalizer, and lets tests assert on what arrived::

    with Inbox() as inbox:
        client = sentry_sdk.Client(dsn=inbox.dsn())
        ...
        [error] = inbox.wait_for_items("event")
        assert inbox.problems == []

``Inbox(tls=True)`` serves HTTPS with HTTP/2 and HTTP/1.1, as Sentry's SaaS ingest does, and
``Fault(close_after=N)`` retires connections as nginx and load balancers do.

Run it standalone with ``python -m otel_sentry.inbox`` (or ``otel-sentry inbox``).
"""

from .envelope import (
    ContentEncodingError,
    Envelope,
    EnvelopeError,
    Item,
    decompress,
    encode_envelope,
    parse_envelope,
)
from .faults import Fault
from .otlp import OtlpError, decode_logs, decode_traces
from .server import DEFAULT_PUBLIC_KEY, Inbox
from .store import Counts, ReceivedEnvelope, ReceivedItem
from .view import Echo, render, render_otlp_logs, render_otlp_spans

__all__ = [
    "DEFAULT_PUBLIC_KEY",
    "ContentEncodingError",
    "Counts",
    "Echo",
    "Envelope",
    "EnvelopeError",
    "Fault",
    "Inbox",
    "Item",
    "OtlpError",
    "ReceivedEnvelope",
    "ReceivedItem",
    "decode_logs",
    "decode_traces",
    "decompress",
    "encode_envelope",
    "parse_envelope",
    "render",
    "render_otlp_logs",
    "render_otlp_spans",
]
