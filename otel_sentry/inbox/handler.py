"""The plain HTTP layer: a threading HTTP/1.1 server with keep-alive, routing to the endpoints.

Everything about its sockets lives here: reading bodies (Content-Length or chunked), closing the
connection for a refusing fault or after ``Fault.close_after`` answers, and closing every open
keep-alive connection when the inbox stops so that no handler thread outlives it. The TLS mode
(HTTP/2 and HTTP/1.1) is :mod:`.tls_server`; both answer through :class:`.routes.Router`.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .routes import MAX_BODY, Router, reply_headers
from .wire import Reply, Request, json_reply

__all__ = ["InboxHTTPServer", "InboxRequestHandler"]


class _BodyError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class InboxHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its endpoints and tracks its open connections."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connects when a client's pool opens dozens at
    # once (the kernel discards the SYNs; each costs the client a retry a second later).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        self._thread: threading.Thread | None = None
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = threading.Event()
        super().__init__(address, InboxRequestHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        """Serve on a thread of its own until :meth:`close`."""
        self._thread = threading.Thread(target=self.serve, name=f"inbox-{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, close the listening socket and every open connection."""
        self.stop_serving()
        if self._thread is not None:
            self._thread.join()
        self.server_close()
        self.close_connections()

    def serve(self) -> None:
        """Accept connections until :meth:`stop_serving`, which wakes this loop at once.

        serve_forever() only notices shutdown() at its next poll; waking on a socket pair
        makes stop() immediate, which matters to test suites that start an inbox per test.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self._stopping.is_set():
                        self.handle_request()

    def stop_serving(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"inbox-connection-{client_address[1]}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # the peer went away, or stop() closed the socket under us
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def close_connections(self, timeout: float = 2.0) -> None:
        """Wake every handler blocked on an idle keep-alive socket, then join its thread."""
        with self._connections_lock:
            open_connections = list(self._connections.items())
        for _, sock in open_connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in open_connections:
            thread.join(timeout)


class InboxRequestHandler(BaseHTTPRequestHandler):
    """One connection: requests are read whole, routed, and answered with a Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "otel-sentry-inbox"
    # Headers and body leave in one write (flushed after each request), and without Nagle,
    # so a keep-alive client never waits on a delayed ACK between them.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    # Idle keep-alive connections are dropped after this long; senders reconnect transparently.
    timeout = 60
    server: InboxHTTPServer
    # Requests answered on this connection, for Fault.close_after.
    answered = 0

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the live view, not an access log, is what people read

    def _handle(self, method: str) -> None:
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(json_reply(exc.status, {"detail": str(exc)}))
            return
        request = Request.build(method, self.path, self.headers.items(), body, self.request_version)
        reply = self.server.router.answer(request)
        if reply.refuse:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            raise _BodyError(400, f"invalid Content-Length {raw_length!r}") from None
        if length < 0:
            raise _BodyError(400, f"invalid Content-Length {raw_length!r}")
        if length > MAX_BODY:
            raise _BodyError(413, f"body of {length} bytes exceeds the inbox limit {MAX_BODY}")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise _BodyError(400, f"invalid chunk size {line!r}") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers carry nothing the inbox uses
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise _BodyError(413, f"chunked body exceeds the inbox limit {MAX_BODY}")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: Reply) -> None:
        self.answered += 1
        if self.server.router.ingest.faults.closes_after(self.answered):
            self.close_connection = True
        self.send_response(reply.status)
        for name, value in reply_headers(reply):
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)
