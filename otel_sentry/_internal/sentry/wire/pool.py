"""Many envelopes in flight to one ingest, from one I/O thread: the :class:`Wire`.

Sentry takes one transaction per envelope, so throughput is envelopes in flight divided by the
round trip. With one blocking connection per sender thread, a Sentry 150 ms away took ~27
envelopes a second from 4 threads while a service produced a thousand. Here one thread runs an
asyncio loop of its own and keeps up to ``max_in_flight`` requests out at once:

- over HTTP/2 (offered by the ingest through ALPN, as Sentry's SaaS ingest does) as streams of
  one connection, and a few more connections if the server's stream limit is reached;
- over HTTP/1.1 (plain ``http://`` DSNs, a self-hosted Sentry behind an HTTP/1.1 proxy) as a
  pool of kept-alive connections that grows while requests wait and shrinks when idle.

Closing is cheap: a request caught on a connection the server closes (HTTP/1.1
``Connection: close`` or an idle timeout, an HTTP/2 GOAWAY or refused stream) goes out again on
a new connection, a few times at most. Nothing else is retried here: a refused connection or a
timeout is the caller's to handle (the transport's breaker and spool).

Every request gets exactly one answer through its ``done`` callback, on the I/O thread; the
callbacks must be quick and must not block. :meth:`Wire.close` stops the thread and returns the
requests it leaves unanswered, for the caller to keep.

    wire = Wire("o1.ingest.sentry.io", 443, ssl_context)
    wire.submit(Request("/api/1/envelope/", headers, body, done=on_answer))
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import ssl
import threading
import time

from otel_sentry._internal.sentry.wire import direct
from otel_sentry._internal.sentry.wire.http1 import Http1
from otel_sentry._internal.sentry.wire.http2 import Http2
from otel_sentry._internal.sentry.wire.message import ConnectionLostError, Request, Response

__all__ = ["Wire"]

_log = logging.getLogger("otel_sentry")

# A request is sent again after its connection failed under it at most this often.
MAX_ATTEMPTS = 4
# ... and after a server said it did not process it, this often.
MAX_REFUSED = 50
# Loops and connections a fork left behind in the child (see Wire.after_fork).
_forked_away: list[object] = []
# HTTP/1.1: open connections until what is queued would be sent within this many seconds.
_DRAIN = 0.1


# How often the pool may consider opening connections for waiting requests.
_GROW_EVERY = 0.01


class _Link(asyncio.Protocol):
    """One connection; its codec (HTTP/1.1 or HTTP/2) is chosen by ALPN once TLS is up."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.codec: Http1 | Http2 | None = None
        self.transport: asyncio.Transport | None = None
        self.idle_since = time.monotonic()

    # -- asyncio callbacks ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        tls = transport.get_extra_info("ssl_object")
        alpn = tls.selected_alpn_protocol() if tls is not None else None
        wire = self.wire
        if alpn == "h2":
            http2 = Http2(wire.authority, wire.max_in_flight)
            transport.write(http2.outbound())
            self.codec = http2
        else:
            self.codec = Http1(wire.authority)
        wire._connected(self)

    def data_received(self, data: bytes) -> None:
        codec = self.codec
        assert codec is not None and self.transport is not None
        again: list[tuple[Request, bool]] = []
        failed: Exception | None = None
        try:
            if isinstance(codec, Http2):
                done, again = codec.feed(data)
                failed = codec.error
                out = codec.outbound()
                if out and failed is None:
                    self.transport.write(out)
            else:
                done = codec.feed(data)
        except (ConnectionLostError, ValueError) as exc:
            done, failed = [], exc
        wire = self.wire
        for request, response in done:
            wire._answer(request, response, None)
        for request, unprocessed in again:
            wire._again(request, ConnectionLostError("the stream was reset"), unprocessed)
        if failed is not None:
            _log.debug("otel-sentry: dropping a connection to Sentry: %s", failed)
            codec.closing = True  # connection_lost hands back what it carried
            self.transport.abort()
            return
        if not codec.in_flight():
            self.idle_since = time.monotonic()
            if codec.closing:
                self.transport.close()
        wire._dispatch(self)

    def eof_received(self) -> bool | None:
        if isinstance(self.codec, Http1):
            for request, response in self.codec.eof():
                self.wire._answer(request, response, None)
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        left = self.codec.lost() if self.codec is not None else []
        self.wire._lost(self, left, exc)

    # -- the pool's calls -----------------------------------------------------------------------
    def send(self, requests: list[Request]) -> None:
        """Put ``requests`` on this connection (HTTP/2: several, written in one go)."""
        codec, transport, wire = self.codec, self.transport, self.wire
        assert codec is not None and transport is not None
        deadline = time.monotonic() + wire.timeout
        try:
            for request in requests:
                if isinstance(codec, Http2):
                    codec.send(request)
                else:
                    direct.write(transport, codec.encode(request), plain=wire.tls is None)
                request.attempts += 1
                request.deadline = deadline
                wire._busy += 1
        finally:
            if isinstance(codec, Http2):
                transport.write(codec.outbound())


class Wire:
    """Sends :class:`Request` objects to one ``host:port`` from an I/O thread of its own.

    ``tls``: an SSL context for ``https`` (ALPN is set on it here), None for plain HTTP.
    ``http2``: offer h2 in ALPN. ``max_in_flight``: requests out at once, over all connections
    (HTTP/1.1: the most connections; HTTP/2: streams). ``timeout``: seconds a request may wait
    for its answer once sent. ``idle_timeout``: an unused connection is closed after this, before
    a server's own idle timeout can race a new request on it.

    Threading: :meth:`submit` and :meth:`close` may be called from any thread; everything else
    runs on the I/O thread, which starts with the first request (and again after a fork).
    """

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        *,
        http2: bool = True,
        max_in_flight: int = 128,
        max_h2_connections: int = 4,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        default = 443 if tls is not None else 80
        self.authority = host if port == default else f"{host}:{port}"
        if tls is not None:
            tls.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
        self.max_in_flight = max_in_flight
        self.max_h2_connections = max_h2_connections
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.protocol: str | None = None  # what the server speaks, once known
        self.round_trip = 0.05  # seconds, a moving average of answers (first: the connect)
        self.connections_opened = 0
        self._start_lock = threading.Lock()
        self._closing_lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._incoming: collections.deque[Request] = collections.deque()
        self._kicked = False
        self._queue: collections.deque[Request] = collections.deque()
        self._links: list[_Link] = []
        self._connecting = 0
        self._busy = 0  # sent and not yet answered; changed on the I/O thread only
        self._grown_at = 0.0
        self._regrow_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._leftover: list[Request] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- any thread -----------------------------------------------------------------------------
    def submit(self, request: Request) -> None:
        """Queue ``request``; its ``done`` is called on the I/O thread when it is answered.

        After :meth:`close`, ``done`` is called at once, on this thread, with an error.
        """
        with self._closing_lock:
            closed = self._closed
            if not closed:
                self._incoming.append(request)
        if closed:
            request.done(None, ConnectionLostError("the transport is closed"))
            return
        if not self._kicked:
            self._kicked = True
            loop = self._loop or self._start()
            with contextlib.suppress(RuntimeError):  # closed meanwhile: close() hands it back
                loop.call_soon_threadsafe(self._pump)

    def close(self, timeout: float = 1.0) -> list[Request]:
        """Stop the I/O thread and close every connection; the requests left unanswered.

        The requests returned were queued or in flight: whether an in-flight one reached
        Sentry is unknown, and sending it again later is safe (Sentry drops a repeated event id).
        """
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._shutdown)
            thread.join(timeout)
        with self._closing_lock:  # from here on, submit() answers at once
            self._closed = True
            left = self._leftover
            self._leftover = []
            while self._incoming:
                left.append(self._incoming.popleft())
        left.extend(self._queue)
        self._queue.clear()
        return left

    def after_fork(self) -> None:
        """In a forked child: the parent's thread is gone and its sockets are the parent's.

        The child closes its copies of their descriptors (no TLS close_notify, no FIN: the
        parent goes on using them) after detaching them from their socket objects, so that
        nothing closes the same number again once it names another file. The old loop, whose
        thread does not exist here, is kept referenced rather than collected half-running.
        """
        for link in self._links:
            transport = link.transport
            wrapper = transport.get_extra_info("socket") if transport is not None else None
            sock = getattr(wrapper, "_sock", wrapper)  # asyncio's TransportSocket wraps it
            if sock is not None:
                with contextlib.suppress(OSError, AttributeError):
                    os.close(sock.detach())
        if self._loop is not None:
            _forked_away.append((self._loop, self._links))
        self._reset()

    @property
    def outstanding(self) -> int:
        """Requests queued or in flight (a snapshot)."""
        return len(self._incoming) + len(self._queue) + self._busy

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._run, args=(loop,), name="otel-sentry-io", daemon=True
                )
                self._loop = loop
                self._thread.start()
            return self._loop

    # -- I/O thread -----------------------------------------------------------------------------
    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.call_later(1.0, self._sweep)
        try:
            loop.run_forever()
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
        finally:
            loop.close()

    def _pump(self) -> None:
        self._kicked = False
        incoming, queue = self._incoming, self._queue
        if self._closed:
            return
        waiting = bool(queue)
        while incoming:
            queue.append(incoming.popleft())
        if waiting:
            # Requests were already waiting, so every connection is full (each takes from the
            # queue as it frees up): the newcomers wait their turn, no need to ask them all.
            self._grow()
            return
        self._dispatch()

    def _dispatch(self, freed: _Link | None = None) -> None:
        """Put waiting requests on connections with room: ``freed``, the one that just got an
        answer, or all of them. With a queue, every connection is full: a freed one is the only
        one that can have room, and asking all 256 HTTP/1.1 connections per answer was most
        of the I/O thread's time while envelopes waited (2 GIL-bound cores, 1000 req/s)."""
        queue = self._queue
        if not queue or self._closed:
            return
        for link in self._links if freed is None else (freed,):
            codec = link.codec
            if codec is None:
                continue
            room = min(codec.capacity(), len(queue))
            if room > 0:
                batch = [queue.popleft() for _ in range(room)]
                try:
                    link.send(batch)
                except Exception as exc:  # a connection in a state we did not foresee
                    _log.debug("otel-sentry: dropping a connection to Sentry: %r", exc)
                    codec.closing = True
                    for request in reversed(batch):
                        if not request.deadline:  # not on the connection: not handed back
                            queue.appendleft(request)
                    if link.transport is not None:
                        link.transport.abort()  # connection_lost hands back the others
            if not queue:
                return
        self._grow()

    def _grow(self) -> None:
        """Open connections for what still waits; at most every 10 ms (they take a round trip
        to open anyway), since it looks at every connection."""
        now = time.monotonic()
        if now - self._grown_at < _GROW_EVERY:
            if not self._regrow_scheduled and self._loop is not None:
                self._regrow_scheduled = True
                self._loop.call_later(_GROW_EVERY, self._regrow)
            return
        self._grown_at = now
        live = [link for link in self._links if link.codec is not None and not link.codec.closing]
        if self.protocol is None:
            want = 0 if live or self._connecting else 1  # learn what the server speaks first
        elif self.protocol == "h2":
            want = 0 if self._connecting or len(live) >= self.max_h2_connections else 1
        else:
            # As many connections as drain the queue within _DRAIN seconds at the measured
            # round trip, opened at most as many at once as are open already (slow start): a
            # burst against a near, fast ingest reuses a few instead of opening dozens.
            needed = math.ceil(len(self._queue) * self.round_trip / _DRAIN)
            room = self.max_in_flight - len(self._links) - self._connecting
            start = max(1, len(self._links)) - self._connecting
            want = min(needed - len(live) - self._connecting, room, start)
        loop = self._loop
        assert loop is not None
        for _ in range(max(0, want)):
            self._connecting += 1
            task = loop.create_task(self._connect())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _regrow(self) -> None:
        self._regrow_scheduled = False
        if self._queue and not self._closed:
            self._grow()

    async def _connect(self) -> None:
        loop = self._loop
        assert loop is not None
        began = time.monotonic()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Link(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                ),
                self.connect_timeout,
            )
        except asyncio.CancelledError:
            self._connecting -= 1
            raise
        except Exception as exc:  # refused, unreachable, TLS, timeout
            self._connecting -= 1
            self._connect_failed(exc)
            return
        self._connecting -= 1
        if not self.connections_opened:
            self.round_trip = time.monotonic() - began
        self.connections_opened += 1
        self._dispatch()

    def _connected(self, link: _Link) -> None:
        assert link.codec is not None
        self.protocol = link.codec.protocol
        self._links.append(link)

    def _connect_failed(self, exc: BaseException) -> None:
        if self._connecting or any(link.codec is not None for link in self._links):
            return  # another connection may still take them
        error = (
            exc if isinstance(exc, ConnectionError) else ConnectionLostError(str(exc) or repr(exc))
        )
        queue = self._queue
        while queue:
            self._answer(queue.popleft(), None, error)

    def _lost(self, link: _Link, left: list[Request], exc: Exception | None) -> None:
        with contextlib.suppress(ValueError):
            self._links.remove(link)
        reason = ConnectionLostError(f"the connection closed ({exc or 'by the server'})")
        for request in left:
            self._again(request, reason)
        self._dispatch()

    def _again(self, request: Request, reason: BaseException, unprocessed: bool = False) -> None:
        """Send ``request`` again on another connection, unless it has been tried enough.

        ``unprocessed``: the server said it did not process it (past a GOAWAY's last stream, a
        refused stream): that try does not count, up to a bound a looping server cannot pass.
        """
        if request.deadline:
            self._busy -= 1
            request.deadline = 0.0
        if unprocessed:
            request.refused += 1
            request.attempts -= 1
        if self._closed:
            self._leftover.append(request)
        elif request.attempts >= MAX_ATTEMPTS or request.refused > MAX_REFUSED:
            self._answer(request, None, reason)
        else:
            self._queue.appendleft(request)

    def _answer(
        self, request: Request, response: Response | None, error: BaseException | None
    ) -> None:
        if request.deadline:
            self._busy -= 1
            if response is not None:
                sample = time.monotonic() - (request.deadline - self.timeout)
                self.round_trip += (sample - self.round_trip) * 0.1
            request.deadline = 0.0
        try:
            request.done(response, error)
        except Exception:
            _log.exception("otel-sentry: handling Sentry's answer failed")

    def _sweep(self) -> None:
        """Once a second: requests past their deadline, idle connections, stuck queues."""
        loop = self._loop
        if self._closed or loop is None:
            return
        now = time.monotonic()
        for link in list(self._links):
            codec, transport = link.codec, link.transport
            if codec is None or transport is None:
                continue
            late = [r for r in codec.in_flight() if r.deadline < now]
            if late and isinstance(codec, Http2):
                for request in late:
                    codec.cancel(request)
                    self._answer(request, None, TimeoutError("Sentry did not answer in time"))
                transport.write(codec.outbound())
            elif late:  # HTTP/1.1: the answer may still come, out of step: drop the connection
                for request in codec.lost():
                    self._answer(request, None, TimeoutError("Sentry did not answer in time"))
                transport.abort()
            elif not codec.in_flight() and now - link.idle_since > self.idle_timeout:
                if isinstance(codec, Http2):
                    codec.goodbye()
                    transport.write(codec.outbound())
                transport.close()
        self._dispatch()
        loop.call_later(1.0, self._sweep)

    def _shutdown(self) -> None:
        self._closed = True
        left = self._leftover
        left.extend(self._queue)
        self._queue.clear()
        while self._incoming:
            left.append(self._incoming.popleft())
        for link in self._links:
            if link.codec is not None:
                left.extend(link.codec.lost())
            if link.transport is not None:
                link.transport.abort()
        self._links.clear()
        assert self._loop is not None
        self._loop.stop()
