"""sentry_sdk's HTTP transport, with a send path that keeps up with one envelope per request.

Sentry takes one transaction per envelope, so a service at 1000 requests/s posts 1000 envelopes/s.
sentry_sdk's transport queues each envelope for one worker thread (100 deep by default) and
sends it through urllib3; under load most transactions are lost to ``queue_overflow``. We keep
everything that transport does well (rate limits per category, client reports, 413 and 429
handling, compression, proxies) and change two things, measured in BENCHMARKS.md:

- :meth:`EnvelopeTransport.send_now` sends synchronously on the caller's thread. Our export
  thread calls it, so the only queue between a finished span and Sentry is the exporter's own,
  bounded and counted; no second queue to overflow.
- Without a proxy or client certificate, requests go over one keep-alive HTTP/1.1 connection
  per thread, written directly on a socket instead of urllib3 over http.client.
- Small envelopes are compressed with brotli quality 1 (or gzip level 1) unless the user chose
  a level: at ~1 KiB the size is within 15% of quality 4, at a third of the CPU.
- A send that fails in a way worth retrying (no connection, a 5xx, 408) is not dropped: the
  envelope waits in a bounded :class:`~otel_sentry.sentry.spool.Spool` (memory, or disk with
  ``spool_dir``) and a :class:`~otel_sentry.sentry.spool.Breaker` holds further sends back until
  a probe gets through; then replay threads send what waited, with a fresh ``sent_at`` (Relay
  corrects timestamps by the gap between ``sent_at`` and arrival, so a stale one would move
  every replayed event). sentry_sdk records such envelopes as ``network_error`` at once; we do
  only for what the spool has to let go.

    sentry_sdk.init(dsn=..., transport=EnvelopeTransport)
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import certifi
from opentelemetry import context as otel_context
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import HttpTransport
from sentry_sdk.utils import capture_internal_exceptions

from otel_sentry.sentry.capture import add_source_context
from otel_sentry.sentry.spool import Breaker, Spool, Ticket

__all__ = ["EnvelopeTransport"]


class _ClosedError(ConnectionError):
    """The server closed a kept-alive connection before answering."""


# A kept-alive connection the server has since closed fails on first use; one retry on a fresh
# connection is safe (Sentry deduplicates by event id) and is what browsers do too.
_STALE = (_ClosedError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class _Headers(dict[str, str]):
    """Response headers, looked up case-insensitively as sentry_sdk expects."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class _Response:
    __slots__ = ("data", "headers", "status")

    def __init__(self, status: int, headers: _Headers, data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data

    def close(self) -> None:
        return None


class _Connection:
    """One keep-alive HTTP/1.1 connection, written for exactly one job: POST an envelope.

    http.client parses every response's headers through the email package and, with sentry_sdk's
    stdlib integration on, every request is also wrapped in a sentry span and a breadcrumb; for
    a 1 KiB envelope that is most of the send's CPU (see BENCHMARKS.md).
    """

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, timeout: float) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        default = 443 if tls is not None else 80
        self.host_header = host if port == default else f"{host}:{port}"
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buf.clear()

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        self._sock = sock

    def request(
        self, method: str, target: str, body: bytes, headers: Mapping[str, str]
    ) -> _Response:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        head = [
            f"{method} {target} HTTP/1.1",
            f"Host: {self.host_header}",
            f"Content-Length: {len(body)}",
        ]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        self._sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        return self._read_response()

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise _ClosedError("connection closed before a complete response")
        self._buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _take_line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            self._fill()
        return self._take(end + 2)[:-2]

    def _read_response(self) -> _Response:
        # One recv usually holds the whole answer: parse from a buffer, not line by line.
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > 65536:
                raise ConnectionError("response headers too large")
            self._fill()
        head = self._take(end + 4).decode("latin-1").split("\r\n")
        parts = head[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionError(f"not an HTTP response: {head[0][:80]!r}")
        status = int(parts[1])
        headers = _Headers()
        for line in head[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = self._read_chunked()
        elif "content-length" in headers:
            data = self._take(int(headers["content-length"]))
        else:  # the server marks the end by closing
            with contextlib.suppress(_ClosedError):
                while True:
                    self._fill()
            data, headers["connection"] = bytes(self._buf), "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return _Response(status, headers, data)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self._take_line().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._take_line():
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self._take(size))
            self._take_line()


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
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._direct = self._can_send_directly(options)
        url = urlsplit(self._auth.get_api_url())
        self._scheme = url.scheme
        self._host = url.hostname or ""
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self.breaker = Breaker()
        self.spool = Spool(on_drop=self._lost)
        self._replayers: list[threading.Thread] = []
        self._replay_wake = threading.Event()
        self._closing = False
        # Set by init() when it takes source lines off the capturing thread (sentry/frames.py).
        self.source_context = False
        self._ssl: ssl.SSLContext | None = None
        if self._scheme == "https":
            self._ssl = ssl.create_default_context(
                cafile=options.get("ca_certs")
                or os.environ.get("SSL_CERT_FILE")
                or os.environ.get("REQUESTS_CA_BUNDLE")
                or certifi.where()
            )
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _after_fork(self) -> None:
        # A forked child must not share the parent's kept-alive sockets (both would read the
        # same answers) nor urllib3's pool, whose lock another thread may have held at fork.
        for conn in list(self._connections):
            conn.close()  # only this process's copy of the descriptor
        self._connections = weakref.WeakSet()
        self._local = threading.local()
        with contextlib.suppress(Exception):
            self._pool = self._make_pool()
        # What waits for Sentry is the parent's to send (sending it here too would duplicate
        # it); the child gets an empty spool of its own, a fresh breaker and no replay threads.
        self.spool.after_fork()
        self.breaker = Breaker()
        self._replayers = []
        self._replay_wake = threading.Event()

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

    def use_spool(self, directory: str | None, max_bytes: int) -> None:
        """Where envelopes wait while Sentry is unreachable: memory (None) or this directory."""
        old, self.spool = self.spool, Spool(directory, max_bytes=max_bytes, on_drop=self._lost)
        while (envelope := old.take()) is not None:
            self.spool.put(envelope)
        old.close()
        if len(self.spool):
            self._wake_replay()

    def send_now(self, envelope: Envelope, ticket: Ticket | None = None) -> None:
        """Send on the calling thread: rate limits, client reports and errors as usual.

        ``ticket`` is the envelope's place in the spool when the caller already wrote it there
        (disk mode); otherwise a failed send puts the envelope in the spool.
        """
        local = self._local
        local.ticket = ticket or Ticket(envelope)
        local.retry = False
        try:
            with capture_internal_exceptions():
                self._send_envelope(envelope)
        finally:
            held, local.ticket = local.ticket, None
            if local.retry:
                self.defer(held)
            else:
                self.spool.release(held)
        if not self.breaker.open:
            with capture_internal_exceptions():
                self._flush_client_reports_now()

    def _send_envelope(self, envelope: Envelope) -> None:
        if self.source_context:
            for item in envelope.items:
                event = item.payload.json if item.type == "event" else None
                if isinstance(event, dict):
                    with capture_internal_exceptions():
                        add_source_context(event)  # here, not on the request (capture.py)
        super()._send_envelope(envelope)

    def defer(self, ticket: Ticket) -> None:
        """Not now: the envelope waits in the spool and is replayed when Sentry answers."""
        self.spool.retry(ticket)
        self._wake_replay()

    def _send_request(
        self,
        body: bytes,
        headers: dict[str, str],
        endpoint_type: Any,
        envelope: Envelope | None = None,
    ) -> None:
        # sentry_sdk drops the envelope on any failure; we keep what a later attempt can deliver.
        if envelope is None:
            super()._send_request(body, headers, endpoint_type, envelope)
            return
        if not self.breaker.allow():
            self._wait(envelope)
            return
        self._update_headers(headers)
        try:
            response = self._request("POST", endpoint_type, body, headers)
        except Exception:
            self.breaker.failure()
            self._wait(envelope)
            return
        try:
            if response.status >= 500 or response.status == 408:
                self.breaker.failure()
                self._wait(envelope)
                return
            self.breaker.success()
            self._handle_response(response=response, envelope=envelope)
        finally:
            response.close()

    def _wait(self, envelope: Envelope) -> None:
        """Keep ``envelope`` (already prepared: rate limits applied) until Sentry is back."""
        local = self._local
        if getattr(local, "ticket", None) is not None:
            local.retry = True  # send_now moves its ticket to the spool: no second copy
            return
        self.spool.put(envelope)  # sentry_sdk's own worker (errors, sessions)
        self._wake_replay()

    def _lost(self, envelope: Envelope) -> None:
        # Full while Sentry fails: lost to the outage; full while it answers: we fell behind.
        reason = "network_error" if self.breaker.open else "queue_overflow"
        for item in envelope.items:
            self.record_lost_event(reason, item=item)

    # -- replay ---------------------------------------------------------------------------------
    def _wake_replay(self) -> None:
        if not self._replayers or not all(t.is_alive() for t in self._replayers):
            self._start_replayers()
        self._replay_wake.set()

    def _start_replayers(self, threads: int = 2) -> None:
        self._replayers = [
            threading.Thread(target=self._replay, name=f"otel-sentry-replay-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._replayers:
            thread.start()

    def _replay(self) -> None:
        while not self._closing:
            if not len(self.spool):
                self._replay_wake.wait(1.0)
                self._replay_wake.clear()
                continue
            if not self.breaker.ready():
                # Not the wake event: every deferred envelope sets it, and waiting on it here
                # would spin for the whole outage, taking the GIL from the app's threads.
                time.sleep(min(max(self.breaker.seconds_left(), 0.05), 0.5))
                continue
            envelope = self.spool.take()
            if envelope is None:
                continue
            envelope.headers["sent_at"] = (
                datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
            )
            self.send_now(envelope)

    def drain(self, timeout: float) -> bool:
        """Send what waits in the spool, for at most ``timeout`` seconds; True if it emptied."""
        if len(self.spool):
            self._wake_replay()
        deadline = time.monotonic() + timeout
        while len(self.spool) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not len(self.spool)

    def _flush_client_reports_now(self) -> None:
        report = self._fetch_pending_client_report(interval=60)
        if report is not None:
            self._send_envelope(Envelope(items=[report]))

    def _connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _Connection(self._host, self._port, self._ssl, self.TIMEOUT)
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
                    return conn.request(method, target, bytes(body), headers)
                except _STALE:
                    conn.close()
                    if attempt:
                        raise
                except Exception:
                    conn.close()
                    raise
        finally:
            otel_context.detach(token)
        raise AssertionError("unreachable")

    def kill(self) -> None:
        self._closing = True
        self._replay_wake.set()
        self.spool.close()
        for conn in list(self._connections):
            conn.close()
        super().kill()
