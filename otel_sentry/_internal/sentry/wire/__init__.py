"""Getting envelopes to Sentry's ingest with many in flight: HTTP/2 streams or pooled HTTP/1.1.

:class:`Wire` is the pool and its I/O thread; :class:`Request` and :class:`Response` are what goes
in and comes out. The transport (``otel_sentry/_internal/sentry/transport.py``) decides what to send
and what to do with each answer.
"""

from otel_sentry._internal.sentry.wire.message import (
    ConnectionLostError,
    Headers,
    Request,
    Response,
)
from otel_sentry._internal.sentry.wire.pool import Wire

__all__ = ["ConnectionLostError", "Headers", "Request", "Response", "Wire"]
