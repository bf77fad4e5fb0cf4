"""sentry_sdk's HTTP transport, with a send path that keeps up with a distant, failing Sentry.

Sentry takes one transaction per envelope, so a service at 1000 requests/s posts 1000 envelopes/s
to an ingest 20-150 ms away. sentry_sdk's transport sends them one at a time from one worker
thread behind a 100-deep queue and reports the rest as ``queue_overflow``. We keep everything
that transport does well (rate limits per category, client reports, 413 and 429 handling,
compression) and change how envelopes travel, measured in BENCHMARKS.md ("distant ingest"):

- :meth:`EnvelopeTransport.send` prepares an envelope on the caller's thread (rate limits,
  compression) and hands it to a :class:`~otel_sentry._internal.sentry.wire.Wire`: one I/O thread
  with up to ``max_in_flight`` envelopes out at once, as HTTP/2 streams when the ingest offers h2
  (as Sentry's SaaS ingest does) or over a pool of kept-alive HTTP/1.1 connections. Answers are
  handled on that thread. Proxies and custom socket options keep sentry_sdk's urllib3 pool, from a
  few threads (:class:`~otel_sentry._internal.sentry.wire.threaded.ThreadedWire`).
- Bodies are compressed with zstd level 1 (:mod:`~otel_sentry._internal.sentry.compress`), a batch
  at a time from the export thread (:meth:`EnvelopeTransport.batch`): one call that lets go of the
  GIL per batch, not per envelope. An ingest too old for zstd gets brotli or gzip level 1.
- A send that fails in a way worth retrying (no connection, a 5xx, 408, no answer in time) is not
  dropped: the envelope waits in a bounded :class:`~otel_sentry._internal.sentry.spool.Spool`
  (memory, or disk with ``spool_dir``) and a :class:`~otel_sentry._internal.sentry.spool.Breaker`
  holds further sends back until a probe gets through; then a replay thread sends what waited, with
  a fresh ``sent_at`` (Relay corrects timestamps by the gap between ``sent_at`` and arrival). So
  does what arrives faster than the wire takes it.
- Nothing is lost silently. Every envelope ends delivered, counted in a client report (refused for
  good, or pushed out of a full spool), or on disk: at exit, what is still waiting is written to the
  exit spool (:mod:`otel_sentry._internal.sentry.exit_spool`) for the next start to deliver, and
  only when that is off or fails is it counted, and the count sent in the same shutdown.

    sentry_sdk.init(dsn=..., transport=EnvelopeTransport)
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import HttpTransport
from sentry_sdk.utils import capture_internal_exceptions
from sentry_sdk.utils import logger as _sdk_log

from otel_sentry._internal.sentry import exit_spool
from otel_sentry._internal.sentry.capture import add_source_context
from otel_sentry._internal.sentry.compress import Compression
from otel_sentry._internal.sentry.encode import envelope_bytes
from otel_sentry._internal.sentry.spool import Breaker, Spool, Ticket, is_slim, slim
from otel_sentry._internal.sentry.wire import Request, Response, Wire
from otel_sentry._internal.sentry.wire.threaded import ThreadedWire, post_blocking
from otel_sentry._internal.sentry.wire.tls import client_context

__all__ = ["EnvelopeTransport"]

_log = logging.getLogger("otel_sentry")

# Requests out at once. 256 keeps up with ~1700 envelopes/s at a 150 ms round trip over HTTP/1.1
# (one per connection), and over HTTP/2 takes streams on up to four connections.
MAX_IN_FLIGHT = 256
# Prepared envelopes that may queue behind those before new ones wait in the spool instead.
MAX_QUEUED = 1024
# Envelopes compressed together in one call by :meth:`EnvelopeTransport.batch`. Building each
# takes ~60 us of Python, which a request waits out: 16 keep that to ~1 ms a turn (at 64 the
# request p99 at 1000 req/s went from 2-4 to 5-7 ms), and still let go of the GIL 16x less.
BATCH = 16


class EnvelopeTransport(HttpTransport):
    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        algo = cast("str | None", self._compression_algo)  # sentry_sdk's first assignment: None
        self.compression = Compression(
            algo, self._compression_level, options.get("_experiments") or {}
        )
        self._local = threading.local()
        url = urlsplit(self._auth.get_api_url())
        self._scheme = url.scheme
        self._host = url.hostname or ""
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._target = url.path + (f"?{url.query}" if url.query else "")
        self._direct = self._can_send_directly(options)
        self.max_in_flight = MAX_IN_FLIGHT
        self.breaker = Breaker()
        self.spool = Spool(on_drop=self._lost)
        self.exit_dir: Path | None = None
        self._idle = threading.Condition()
        self._open = 0  # envelopes in our care: queued, in flight or waiting in the spool
        self._replayer: threading.Thread | None = None
        self._replay_wake = threading.Event()
        self._closing = False
        # Set by init() when it takes source lines off the capturing thread (sentry/frames.py).
        self.source_context = False
        self._ssl = client_context(options) if self._scheme == "https" else None
        self.wire = self._make_wire()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _make_wire(self) -> Wire | ThreadedWire:
        if self._direct:
            return Wire(
                self._host,
                self._port,
                self._ssl,
                max_in_flight=self.max_in_flight,
                timeout=self.TIMEOUT,
            )
        return ThreadedWire(self._send_through_urllib3)

    def _can_send_directly(self, options: Mapping[str, Any]) -> bool:
        # Proxies and custom socket options stay with urllib3, which sentry_sdk configured.
        import urllib3

        return type(self._pool) is urllib3.PoolManager and options.get("socket_options") is None

    def _after_fork(self) -> None:
        # A forked child must not share the parent's connections (both would read the same
        # answers) nor urllib3's pool, whose lock another thread may have held at fork. What
        # waits for Sentry is the parent's to send; the child starts empty.
        self.wire.after_fork()
        self._local = threading.local()
        if not self._direct:
            self._pool = self._make_pool()
            self.wire = self._make_wire()
        self.spool.after_fork()
        self.breaker = Breaker()
        self._idle = threading.Condition()
        self._open = 0
        self._replayer = None
        self._replay_wake = threading.Event()

    # -- where envelopes wait ---------------------------------------------------------------------
    def use_spool(self, directory: str | None, max_bytes: int) -> None:
        """Where envelopes wait while Sentry is unreachable: memory (None) or this directory."""
        old, self.spool = self.spool, Spool(directory, max_bytes=max_bytes, on_drop=self._lost)
        while (envelope := old.take()) is not None:
            self.spool.put(envelope)
        old.close()
        adopted = len(self.spool)
        if adopted:
            self._opened(adopted)
            self._wake_replay()

    def keep_at_exit(self, directory: Path | None) -> None:
        """At exit, write what is still waiting under ``directory`` (None: count it as lost).

        What earlier processes left there for this DSN is taken over now and sent.
        """
        self.exit_dir = directory
        if directory is None or self.spool.on_disk:
            return
        adopted = exit_spool.adopt(directory)
        for envelope in adopted:
            self.spool.put(envelope)
        if adopted:
            self._opened(len(adopted))
            self._wake_replay()

    # -- sending ----------------------------------------------------------------------------------
    def send(self, envelope: Envelope) -> None:
        """Prepare ``envelope`` on this thread and send it from the I/O thread; never blocks.

        While Sentry is failing, or more is queued than the wire takes, it waits in the spool.
        """
        self._opened(1)
        ticket = self.spool.hold(envelope)
        if self.breaker.open or self.wire.outstanding >= self.max_in_flight + MAX_QUEUED:
            self._wait(ticket)
            return
        self._send_held(ticket)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Envelopes sent from this thread meanwhile are compressed together, :data:`BATCH` at a
        time, in one call that lets go of the GIL once (``compress.py``); then they go out."""
        if not self.compression.batches or getattr(self._local, "batch", None) is not None:
            yield
            return
        pending: list[tuple[Ticket, dict[str, str], bytes]] = []
        self._local.batch = pending
        try:
            yield
        finally:
            self._local.batch = None
            self._submit(pending)

    def _submit(self, pending: list[tuple[Ticket, dict[str, str], bytes]]) -> None:
        try:
            bodies = self.compression.many([raw for _, _, raw in pending])
        except Exception:  # never lose them to a compressor: they wait and are sent again
            _log.exception("otel-sentry: compressing envelopes failed; they wait in the spool")
            for ticket, _, _ in pending:
                self._wait(ticket)
            return
        for (ticket, headers, _), body in zip(pending, bodies, strict=True):
            self._post(ticket, headers, body)

    def _send_held(self, ticket: Ticket) -> None:
        self._local.ticket = ticket
        try:
            with capture_internal_exceptions():
                self._send_envelope(ticket.envelope)
        finally:
            unposted, self._local.ticket = self._local.ticket, None
            if unposted is not None:  # every item rate limited (counted), or preparing failed
                self.spool.release(unposted)
                self._settled()

    def _send_envelope(self, envelope: Envelope) -> None:
        if self.source_context:
            for item in envelope.items:
                event = item.payload.json if item.type == "event" else None
                if isinstance(event, dict):
                    with capture_internal_exceptions():
                        add_source_context(event)  # here, not on the request (capture.py)
        super()._send_envelope(envelope)

    def _prepare_envelope(
        self, envelope: Envelope
    ) -> tuple[Envelope, io.BytesIO, dict[str, str]] | None:
        # sentry_sdk's, without what it spends on every envelope while nothing is rate limited
        # (two clock reads per item, a copy of the envelope, an eagerly formatted debug line).
        limits = self._disabled_until
        if limits and max(limits.values()) > datetime.now(timezone.utc):
            return super()._prepare_envelope(envelope)
        report = self._fetch_pending_client_report(interval=30)
        if report is not None:
            envelope = Envelope(headers=envelope.headers, items=[*envelope.items, report])
        if _sdk_log.isEnabledFor(logging.DEBUG):
            _sdk_log.debug("Sending envelope [%s]", envelope.description)
        encoding, body = self._serialize_envelope(envelope)
        headers = {"Content-Type": "application/x-sentry-envelope"}
        if encoding:
            headers["Content-Encoding"] = encoding
        return envelope, body, headers

    def _update_headers(self, headers: dict[str, str]) -> None:
        # The same two values for every request: built once (sentry_sdk formats them each time).
        auth = self.__dict__.get("_auth_headers")
        if auth is None:
            auth = self._auth_headers = {
                "User-Agent": str(self._auth.client),
                "X-Sentry-Auth": str(self._auth.to_header()),
            }
        headers.update(auth)

    def _serialize_envelope(self, envelope: Envelope) -> tuple[str | None, io.BytesIO]:
        # sentry_sdk's, with the header lines through orjson (encode.py) and the compressor
        # called once instead of through a GzipFile: a third of the CPU of a transaction
        # envelope on the thread that competes with requests for the GIL. Inside batch(), a zstd
        # body stays raw here and is compressed with its batch (_send_request holds it back).
        raw = envelope_bytes(envelope)
        compression = self.compression
        encoding = compression.encoding
        if encoding is None:
            return None, io.BytesIO(raw)
        if encoding == "zstd" and getattr(self._local, "batch", None) is not None:
            return encoding, io.BytesIO(raw)
        return encoding, io.BytesIO(compression.one(raw))

    def _send_request(
        self,
        body: bytes,
        headers: dict[str, str],
        endpoint_type: Any,
        envelope: Envelope | None = None,
    ) -> None:
        if envelope is None:  # not an envelope of ours to keep: sentry_sdk's way
            super()._send_request(body, headers, endpoint_type, envelope)
            return
        held: Ticket | None = getattr(self._local, "ticket", None)
        self._local.ticket = None
        if held is None:  # sentry_sdk's own worker thread: errors, sessions, client reports
            self._opened(1)
            ticket = Ticket(slim(envelope))
        elif held.envelope is envelope and is_slim(envelope):
            ticket = held  # sent as it was held (our transactions: bytes from the start)
        elif held.path is not None and len(held.envelope.items) == len(envelope.items):
            ticket = Ticket(slim(envelope), held.path)  # the file on disk says the same
        else:  # items were rate limited or a client report rode along: keep what is sent
            self.spool.release(held)
            ticket = Ticket(slim(envelope))
        if self._closing:
            self._give_up([ticket])
            return
        if not self.breaker.allow():
            self._wait(ticket)
            return
        self._update_headers(headers)
        batch = getattr(self._local, "batch", None)
        # Inside batch(), _serialize_envelope left zstd bodies raw: compressed with their batch.
        if batch is not None and headers.get("Content-Encoding") == "zstd":
            batch.append((ticket, headers, body))
            if len(batch) >= BATCH:
                self._submit(batch[:])
                batch.clear()
            return
        self._post(ticket, headers, body)

    def _post(self, ticket: Ticket, headers: dict[str, str], body: bytes, probe: int = 0) -> None:
        encoding = headers.get("Content-Encoding")
        done = partial(self._answered, ticket, encoding, probe)
        self.wire.submit(Request(self._target, list(headers.items()), body, done, ticket))

    def _answered(
        self,
        ticket: Ticket,
        encoding: str | None,
        probe: int,
        response: Response | None,
        error: BaseException | None,
    ) -> None:
        """Sentry's answer to one envelope, on the I/O thread.

        ``encoding``: the body's; ``probe``: the status a zstd body got when this is the same
        envelope sent again in the fallback encoding.
        """
        if response is not None and response.status in (400, 415) and encoding == "zstd":
            # Maybe a Relay from before zstd: the same envelope the old way (compress.py).
            fallback = self.compression.fallback[0] or "identity"
            headers = {"Content-Type": "application/x-sentry-envelope"}
            if fallback != "identity":
                headers["Content-Encoding"] = fallback
            self._update_headers(headers)
            body = self.compression.one(envelope_bytes(ticket.envelope), fallback)
            self._post(ticket, headers, body, probe=response.status)
            return
        if probe and response is not None and response.status < 300:
            self.compression.give_up_zstd(self._host, probe)
        if response is None or response.status >= 500 or response.status == 408:
            self.breaker.failure()
            self._wait(ticket)
            return
        self.breaker.success()
        try:
            with capture_internal_exceptions():
                self._handle_response(response=response, envelope=ticket.envelope)  # type: ignore[arg-type]
        finally:
            self.spool.release(ticket)
            self._settled()
        if len(self.spool) and self.wire.outstanding < self.max_in_flight:
            # Only when the replay can send: woken for every answer while the wire is full, it
            # took the GIL a thousand times a second to find no room.
            self._wake_replay()
        with capture_internal_exceptions():
            report = self._fetch_pending_client_report(interval=60)
            if report is not None:
                self._send_envelope(Envelope(items=[report]))

    def _wait(self, ticket: Ticket) -> None:
        """Not now: the envelope waits in the spool and is replayed when Sentry answers."""
        if self._closing:
            self._give_up([ticket])
            return
        self.spool.retry(ticket)
        self._wake_replay()

    def _lost(self, envelope: Envelope) -> None:
        # Pushed out of a full spool. Full while Sentry fails: lost to the outage; full while
        # it answers: we fell behind.
        reason = "network_error" if self.breaker.open else "queue_overflow"
        for item in envelope.items:
            self.record_lost_event(reason, item=item)
        self._settled()

    def _opened(self, n: int) -> None:
        with self._idle:
            self._open += n

    def _settled(self) -> None:
        with self._idle:
            self._open -= 1
            if self._open <= 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once every envelope handed to us was answered, dropped (counted) or kept."""
        with self._idle:
            return self._idle.wait_for(lambda: self._open <= 0, timeout)

    def flush(self, timeout: float, callback: Any = None) -> None:
        """sentry_sdk's flush (its worker queue), then ours: what is queued or in flight.

        ``client.close()`` flushes and then kills the transport: without waiting here, what is
        still on the wire would be cut off and kept for the next start (or counted as lost).
        """
        deadline = time.monotonic() + timeout
        super().flush(timeout, callback)
        self.drain(max(0.0, deadline - time.monotonic()))

    def drain(self, timeout: float) -> bool:
        """Send what waits (spool included) for at most ``timeout`` seconds; True if all went."""
        if len(self.spool):
            self._wake_replay()
        return self.wait_idle(timeout)

    # -- replay -----------------------------------------------------------------------------------
    def _wake_replay(self) -> None:
        thread = self._replayer
        if (thread is None or not thread.is_alive()) and not self._closing:
            thread = threading.Thread(target=self._replay, name="otel-sentry-replay", daemon=True)
            self._replayer = thread
            thread.start()
        self._replay_wake.set()

    def _replay(self) -> None:
        while not self._closing:
            if not len(self.spool) or self.wire.outstanding >= self.max_in_flight:
                self._replay_wake.wait(1.0 if not len(self.spool) else 0.05)
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
            self._send_held(Ticket(envelope))

    # -- proxies ----------------------------------------------------------------------------------
    def _send_through_urllib3(self, request: Request) -> Any:
        return self._post_blocking(request.body, dict(request.headers), self.TIMEOUT)

    def _post_blocking(self, body: bytes, headers: dict[str, str], timeout: float) -> Any:
        return post_blocking(self._pool, self._auth.get_api_url(), body, headers, timeout)

    # -- exit -------------------------------------------------------------------------------------
    def kill(self) -> None:
        """Stop sending; what is still waiting goes to disk, or is counted and reported."""
        if self._closing:
            return
        self._closing = True
        self._replay_wake.set()
        left: list[Ticket] = [r.context for r in self.wire.close() if isinstance(r.context, Ticket)]
        if self.spool.on_disk:
            for ticket in left:
                self.spool.retry(ticket)  # held files move to retry/; the next start sends them
                self._settled()
        else:
            while (envelope := self.spool.take()) is not None:
                left.append(Ticket(envelope))
            self._give_up(left)
        self.spool.close()
        super().kill()

    def _give_up(self, tickets: list[Ticket]) -> None:
        """Closing: write ``tickets`` to the exit spool, or count them and report the count."""
        if not tickets:
            return
        envelopes = [t.envelope for t in tickets]
        kept = exit_spool.persist(self.exit_dir, envelopes) if self.exit_dir else 0
        for _ in range(kept):
            self._settled()
        if kept == len(envelopes):
            return
        for envelope in envelopes[kept:]:
            self._lost(envelope)  # counted as one pushed out of a full spool would be
        self._report_now()

    def _report_now(self) -> None:
        """The client report of what was lost at exit, in one short blocking request."""
        report = self._fetch_pending_client_report(force=True)
        if report is None or self.breaker.open:
            return
        with capture_internal_exceptions():
            prepared = self._prepare_envelope(Envelope(items=[report]))
            if prepared is None:
                return
            _, body, headers = prepared
            self._update_headers(headers)
            self._post_blocking(body.getvalue(), headers, 1.0)
