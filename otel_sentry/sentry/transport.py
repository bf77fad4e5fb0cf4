"""sentry_sdk's HTTP transport, with a send path that keeps up with one envelope per request.

Sentry takes one transaction per envelope, so a service at 1000 requests/s posts 1000 envelopes/s.
sentry_sdk's transport queues each envelope for one worker thread (100 deep by default) and
sends it through urllib3; under load most transactions are lost to ``queue_overflow``. We keep
everything that transport does well (rate limits per category, client reports, 413 and 429
handling, compression, proxies) and change two things, measured in BENCHMARKS.md:

- :meth:`EnvelopeTransport.send_now` sends synchronously on the caller's thread. Our export
  thread calls it, so the only queue between a finished span and Sentry is the exporter's own,
  bounded and counted; no second queue to overflow.
- Without a proxy or client certificate, requests go over one keep-alive ``http.client``
  connection per thread instead of urllib3's pool: about a third of the CPU per request.
- Small envelopes are compressed with brotli quality 1 (or gzip level 1) unless the user chose
  a level: at ~1 KiB the size is within 15% of quality 4, at a third of the CPU.

    sentry_sdk.init(dsn=..., transport=EnvelopeTransport)
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import certifi
from opentelemetry import context as otel_context
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import HttpTransport
from sentry_sdk.utils import capture_internal_exceptions

__all__ = ["EnvelopeTransport"]

# A kept-alive connection the server has since closed fails on first use; one retry on a fresh
# connection is safe (Sentry deduplicates by event id) and is what browsers do too.
_STALE = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    ConnectionResetError,
    BrokenPipeError,
)


class EnvelopeTransport(HttpTransport):
    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        experiments = options.get("_experiments") or {}
        if (
            experiments.get("transport_compression_level") is None
            and experiments.get("transport_zlib_compression_level") is None
            and str(self._compression_algo) in ("br", "gzip")
        ):
            self._compression_level = 1
        self._local = threading.local()
        self._connections: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._direct = self._can_send_directly(options)
        url = urlsplit(self._auth.get_api_url())
        self._scheme = url.scheme
        self._host = url.hostname or ""
        self._port = url.port
        self._ssl: ssl.SSLContext | None = None
        if self._scheme == "https":
            self._ssl = ssl.create_default_context(
                cafile=options.get("ca_certs")
                or os.environ.get("SSL_CERT_FILE")
                or os.environ.get("REQUESTS_CA_BUNDLE")
                or certifi.where()
            )

    def _can_send_directly(self, options: Mapping[str, Any]) -> bool:
        # Anything beyond a plain connection (proxies, client certificates, custom socket
        # options) stays with urllib3, which sentry_sdk configured for it.
        import urllib3

        return (
            type(self._pool) is urllib3.PoolManager
            and not options.get("cert_file")
            and not options.get("key_file")
            and not os.environ.get("CLIENT_CERT_FILE")
            and options.get("socket_options") is None
        )

    def send_now(self, envelope: Envelope) -> None:
        """Send on the calling thread: rate limits, client reports and errors as usual."""
        with capture_internal_exceptions():
            self._send_envelope(envelope)
            self._flush_client_reports_now()

    def _flush_client_reports_now(self) -> None:
        report = self._fetch_pending_client_report(interval=60)
        if report is not None:
            self._send_envelope(Envelope(items=[report]))

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._ssl is not None:
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.TIMEOUT, context=self._ssl
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.TIMEOUT)
            self._local.conn = conn
            self._connections.add(conn)
        return conn

    def _request(
        self, method: str, endpoint_type: Any, body: Any, headers: Mapping[str, str]
    ) -> Any:
        if not self._direct:
            return super()._request(method, endpoint_type, body, headers)
        path = urlsplit(self._auth.get_api_url(endpoint_type))
        target = path.path + (f"?{path.query}" if path.query else "")
        # Our own sends must never become spans, whatever instrumentation is installed.
        token = otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )
        try:
            for attempt in range(2):
                conn = self._connection()
                try:
                    conn.request(method, target, body=body, headers=dict(headers))
                    response = conn.getresponse()
                    # sentry_sdk reads `.data` for error messages; reading also frees the
                    # connection for the next request.
                    response.data = response.read()  # type: ignore[attr-defined]
                    return response
                except _STALE:
                    conn.close()
                    self._local.conn = None
                    if attempt:
                        raise
                except Exception:
                    conn.close()
                    self._local.conn = None
                    raise
        finally:
            otel_context.detach(token)
        raise AssertionError("unreachable")

    def kill(self) -> None:
        for conn in list(self._connections):
            conn.close()
        super().kill()
