"""One row of the wire-candidates benchmark: one way of sending envelopes, in a fresh process.

``benchmarks/wire_candidates.py`` starts it once per row and reads the JSON line it prints last.
It builds the body (one envelope with a ~2 KB transaction, serialized by sentry_sdk and
compressed with brotli at quality 1, as the transport sends it), posts ``--warmup`` copies to
open the connections and pay one-time costs (imports, first TLS handshakes), then times ``--n``
copies, up to 128 in flight: ``time.process_time()`` (every thread of the process, which is why
each candidate gets a process of its own) and wall time around them. The candidates are our
``Wire`` (h1, h2, h1 over TLS), ``Wire``'s pool with h11 as its codec, httpcore's pool (h1, h2)
and the previous design's four blocking sender threads::

    python -m benchmarks.wire_worker wire-h1 --dsn http://key@127.0.0.1:8969/1 --n 5000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = ["IN_FLIGHT", "THREADS", "main", "worker"]

IN_FLIGHT = 128
THREADS = 4  # the previous design's sender threads
Tally = dict[str, Any]


def _envelope() -> bytes:
    """One envelope with a ~2 KB transaction, as the transport sends it: brotli quality 1."""
    import uuid

    import brotli
    from sentry_sdk.envelope import Envelope

    trace_id, now = uuid.uuid4().hex, time.time()
    spans = [
        {
            "trace_id": trace_id,
            "span_id": uuid.uuid4().hex[:16],
            "parent_span_id": "a" * 16,
            "op": "db.query",
            "description": f"SELECT id, name, price FROM items WHERE id = %s  -- {i}",
            "start_timestamp": now - 0.01,
            "timestamp": now - 0.005,
            "status": "ok",
            "data": {"db.system": "postgresql", "db.name": "shop", "server.address": "db"},
        }
        for i in range(6)
    ]
    event = {
        "event_id": uuid.uuid4().hex,
        "type": "transaction",
        "transaction": "GET /items/{item_id}",
        "transaction_info": {"source": "route"},
        "start_timestamp": now - 0.02,
        "timestamp": now,
        "platform": "python",
        "contexts": {"trace": {"trace_id": trace_id, "span_id": "a" * 16, "op": "http.server"}},
        "spans": spans,
    }
    envelope = Envelope(headers={"event_id": event["event_id"], "sent_at": "2026-12-07T00:00Z"})
    envelope.add_transaction(event)
    return bytes(brotli.compress(envelope.serialize(), quality=1))


class _Target:
    def __init__(self, args: argparse.Namespace) -> None:
        dsn = urllib.parse.urlsplit(args.dsn)
        self.host, self.port = dsn.hostname or "127.0.0.1", dsn.port or 80
        self.tls = dsn.scheme == "https"
        self.ca_file: str | None = args.ca_file
        self.path = f"/api/{dsn.path.strip('/')}/envelope/"
        self.url = f"{dsn.scheme}://{self.host}:{self.port}{self.path}"
        self.headers = [
            ("Content-Type", "application/x-sentry-envelope"),
            ("Content-Encoding", "br"),
            ("X-Sentry-Auth", f"Sentry sentry_version=7, sentry_key={dsn.username}"),
        ]
        self.body = _envelope()

    def context(self, alpn: list[str] | None = None) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


def _answered(tally: Tally, status: int | None, error: BaseException | None) -> None:
    if error is None and status == 200:
        tally["ok"] += 1
    else:
        tally["failed"] += 1
        tally["error"] = tally["error"] or (repr(error) if error else f"status {status}")


def _wire(target: _Target, tally: Tally, http2: bool, h11: bool) -> Callable[[int], None]:
    from otel_sentry._internal.sentry.wire import Request, Wire

    if h11:
        from otel_sentry._internal.sentry.wire import pool

        pool.Http1 = _H11Codec  # type: ignore[misc, assignment]  # this process only
    wire = Wire(target.host, target.port, target.context(), http2=http2, max_in_flight=IN_FLIGHT)

    def batch(k: int) -> None:
        left, finished = [k], threading.Event()

        def done(response: Any, error: BaseException | None) -> None:  # on the I/O thread
            _answered(tally, response.status if response is not None else None, error)
            left[0] -= 1
            if not left[0]:
                finished.set()

        for _ in range(k):
            wire.submit(Request(target.path, target.headers, target.body, done=done))
        if not finished.wait(600):
            raise RuntimeError(f"{left[0]} of {k} requests unanswered after 600 s")
        tally["connections"] = wire.connections_opened

    return batch


class _H11Codec:
    """The interface of ``wire.http1.Http1``, with h11 doing the HTTP/1.1."""

    protocol = "http/1.1"

    def __init__(self, host_header: str) -> None:
        import h11

        self.h11 = h11
        self.conn = h11.Connection(h11.CLIENT)
        self.host = host_header.encode("ascii")
        self.current: Any = None
        self.closing = False
        self._head: tuple[int, Any] | None = None
        self._body: list[bytes] = []

    def capacity(self) -> int:
        return 0 if self.closing or self.current is not None else 1

    def in_flight(self) -> list[Any]:
        return [self.current] if self.current is not None else []

    def encode(self, request: Any, absolute: str = "") -> bytes:
        h11, conn = self.h11, self.conn
        self.current = request
        headers = [(b"Host", self.host), (b"Content-Length", str(len(request.body)).encode())]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
        target = (absolute + request.target).encode("ascii")
        out = conn.send(h11.Request(method=b"POST", target=target, headers=headers)) or b""
        out += conn.send(h11.Data(data=request.body)) or b""
        return out + (conn.send(h11.EndOfMessage()) or b"")

    def feed(self, data: bytes) -> list[tuple[Any, Any]]:
        from otel_sentry._internal.sentry.wire.message import ConnectionLostError, Headers, Response

        h11, conn = self.h11, self.conn
        conn.receive_data(data)
        done = []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise ConnectionLostError(str(exc)) from exc
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.Response):
                headers = Headers(
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers
                )
                self._head = (event.status_code, headers)
            elif isinstance(event, h11.Data):
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and self._head is not None:
                status, headers = self._head
                done.append((self.current, Response(status, headers, b"".join(self._body))))
                self.current, self._head, self._body = None, None, []
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    self.closing = True
            elif isinstance(event, h11.ConnectionClosed):
                self.closing = True
                break
        return done

    def eof(self) -> list[tuple[Any, Any]]:
        self.closing = True
        return []

    def lost(self) -> list[Any]:
        self.closing = True
        left, self.current = self.in_flight(), None
        return left


def _httpcore(target: _Target, tally: Tally, http2: bool, n: int, warmup: int) -> dict[str, float]:
    import httpcore

    headers = [(k.encode(), v.encode()) for k, v in target.headers]

    async def main() -> dict[str, float]:
        async with httpcore.AsyncConnectionPool(
            ssl_context=target.context(), max_connections=IN_FLIGHT, http2=http2
        ) as pool:

            async def batch(k: int, tasks: int = IN_FLIGHT) -> None:
                todo = iter(range(k))

                async def task() -> None:
                    for _ in todo:  # shared by the tasks: each takes the next envelope
                        try:
                            response = await pool.request(
                                "POST", target.url, headers=headers, content=target.body
                            )
                        except Exception as exc:
                            _answered(tally, None, exc)
                        else:
                            _answered(tally, response.status, None)

                await asyncio.gather(*(task() for _ in range(min(tasks, k))))

            # Warm up with 8, 16, ... tasks: httpcore opens a connection per waiting request,
            # and 128 connects at once overflow the sink's accept backlog (socketserver's 5);
            # Wire grows its pool the same gradual way by itself.
            tasks = 8
            while tasks <= IN_FLIGHT:
                await batch(2 * tasks, tasks)
                tasks *= 2
            tally["warmup"], tally["warmup_failed"] = tally["ok"] + tally["failed"], tally["failed"]
            cpu, wall = time.process_time(), time.perf_counter()
            await batch(n)
            figures = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
            tally["connections"] = len(pool.connections)
            return figures

    return asyncio.run(main())


def _threads(target: _Target, tally: Tally) -> Callable[[int], None]:
    from otel_sentry._internal.sentry.wire.http1 import Http1
    from otel_sentry._internal.sentry.wire.message import Request

    context = target.context(["http/1.1"])
    authority = f"{target.host}:{target.port}"
    tally["connections"] = 0

    def connect() -> tuple[socket.socket, Http1]:
        sock = socket.create_connection((target.host, target.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=target.host)
        tally["connections"] += 1
        return sock, Http1(authority)

    links = [connect() for _ in range(THREADS)]

    def sender(slot: int, todo: itertools.count[int], k: int) -> None:
        sock, codec = links[slot]
        while next(todo) < k:
            sock.sendall(codec.encode(Request(target.path, target.headers, target.body, _noop)))
            done: list[Any] = []
            while not done:
                data = sock.recv(65536)
                done = codec.feed(data) if data else codec.eof()
                if not data and not done:
                    raise ConnectionError("the sink closed the connection")
            _answered(tally, done[0][1].status, None)
            if codec.closing:
                sock.close()
                sock, codec = links[slot] = connect()

    def batch(k: int) -> None:
        todo = itertools.count()
        threads = [threading.Thread(target=sender, args=(i, todo, k)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return batch


def _noop(response: Any, error: BaseException | None) -> None:
    return None


def worker(args: argparse.Namespace) -> dict[str, Any]:
    target = _Target(args)
    tally: Tally = {"ok": 0, "failed": 0, "error": None, "connections": None}
    name = args.candidate
    if name.startswith("httpcore"):
        figures = _httpcore(target, tally, name == "httpcore-h2", args.n, args.warmup)
    else:
        if name.startswith("threads"):
            batch = _threads(target, tally)
        else:
            batch = _wire(target, tally, http2=name == "wire-h2", h11=name == "h11-h1")
        batch(args.warmup)
        tally["warmup"], tally["warmup_failed"] = args.warmup, tally["failed"]
        cpu, wall = time.process_time(), time.perf_counter()
        batch(args.n)
        figures = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    return {**figures, **tally, "n": args.n, "body_bytes": len(target.body)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wire_worker", description=__doc__)
    parser.add_argument("candidate", help="a name from wire_candidates.CANDIDATES")
    parser.add_argument("--dsn", required=True, help="the sink's DSN (https: over TLS)")
    parser.add_argument("--ca-file", help="the CA that signed the TLS sink's certificate")
    parser.add_argument("--n", type=int, default=5000, help="envelopes timed, after warm-up")
    parser.add_argument("--warmup", type=int, default=256, help="envelopes sent before timing")
    print(json.dumps(worker(parser.parse_args(argv))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
