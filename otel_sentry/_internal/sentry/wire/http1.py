"""HTTP/1.1 on one kept-alive connection: one request at a time, answers parsed incrementally.

Written for exactly one job, POSTing an envelope and reading Sentry's short answer, because
the general-purpose parsers cost more than the rest of a send (http.client parses every
response's headers through the email package; h11's state machine costs ~3x this per
response, measured in BENCHMARKS.md). Bodies come with Content-Length, chunked, or up to the
close; ``Connection: close`` (a server's keepalive_requests limit) ends the connection after
the answer, and the pool opens another.
"""

from __future__ import annotations

from otel_sentry._internal.sentry.wire.message import (
    ConnectionLostError,
    Headers,
    Request,
    Response,
)

__all__ = ["Http1"]

_MAX_HEAD = 65536


class Http1:
    """The codec of one HTTP/1.1 connection; ``write`` puts bytes on the socket."""

    protocol = "http/1.1"

    def __init__(self, host_header: str) -> None:
        self.host_header = host_header
        self.current: Request | None = None
        self.closing = False  # no new requests: the server asked to close, or it failed
        self._buf = bytearray()
        self._head: tuple[int, Headers] | None = None
        self._length = -1  # -1: not known yet; -2: chunked; -3: until close
        self._chunks: list[bytes] = []

    def capacity(self) -> int:
        return 0 if self.closing or self.current is not None else 1

    def in_flight(self) -> list[Request]:
        return [self.current] if self.current is not None else []

    def encode(self, request: Request, absolute: str = "") -> bytes:
        self.current = request
        head = [
            f"POST {absolute}{request.target} HTTP/1.1",
            f"Host: {self.host_header}",
            f"Content-Length: {len(request.body)}",
        ]
        head.extend(f"{k}: {v}" for k, v in request.headers)
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body

    def feed(self, data: bytes) -> list[tuple[Request, Response]]:
        """Bytes from the server; the requests they completed (zero or one)."""
        self._buf += data
        done: list[tuple[Request, Response]] = []
        while self.current is not None and (response := self._parse()) is not None:
            request, self.current = self.current, None
            done.append((request, response))
        if self.current is None and self._buf:
            self.closing = True  # bytes nobody asked for: the stream is out of step
        return done

    def eof(self) -> list[tuple[Request, Response]]:
        """The server closed: a body that ran to the close is complete now."""
        self.closing = True
        if self.current is not None and self._head is not None and self._length == -3:
            status, headers = self._head
            request, self.current = self.current, None
            return [(request, Response(status, headers, bytes(self._buf)))]
        return []

    def lost(self) -> list[Request]:
        """The connection is gone: the requests it leaves unanswered."""
        self.closing = True
        left, self.current = self.in_flight(), None
        return left

    def _parse(self) -> Response | None:
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD:
                    raise ConnectionLostError("response headers too large")
                return None
            lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            del self._buf[: end + 4]
            parts = lines[0].split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ConnectionLostError(f"not an HTTP response: {lines[0][:80]!r}")
            status = int(parts[1])
            headers = Headers()
            for line in lines[1:]:
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            if 100 <= status < 200:
                return self._parse()  # 100 Continue and friends: the real answer follows
            self._head = (status, headers)
            if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
                self.closing = True
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self._length = -2
            elif "content-length" in headers:
                self._length = int(headers["content-length"])
            else:
                self._length = -3
                self.closing = True
        status, headers = self._head
        if self._length >= 0:
            if len(self._buf) < self._length:
                return None
            data = bytes(self._buf[: self._length])
            del self._buf[: self._length]
        elif self._length == -2:
            body = self._dechunk()
            if body is None:
                return None
            data = body
        else:
            return None  # runs to the close: see eof()
        self._head, self._length = None, -1
        return Response(status, headers, data)

    def _dechunk(self) -> bytes | None:
        while True:
            end = self._buf.find(b"\r\n")
            if end < 0:
                return None
            size = int(bytes(self._buf[:end]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                trailer_end = self._buf.find(b"\r\n\r\n", end)
                if trailer_end == end:  # no trailers
                    del self._buf[: end + 4]
                elif trailer_end < 0:
                    return None
                else:
                    del self._buf[: trailer_end + 4]
                data, self._chunks = b"".join(self._chunks), []
                return data
            if len(self._buf) < end + 2 + size + 2:
                return None
            self._chunks.append(bytes(self._buf[end + 2 : end + 2 + size]))
            del self._buf[: end + 2 + size + 2]
