"""HTTP/2 on one connection: many envelopes in flight at once, multiplexed as streams.

Sentry's SaaS ingest offers h2 through ALPN. One connection then carries as many concurrent
POSTs as the server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` allows, so throughput stops depending
on the round trip.

Our own framing, and ``hpack`` (python-hyper's, the one ``h2`` uses) to read answers' headers.
``h2`` itself measured too slow for the send path: it spent ~240 us of CPU per envelope on the
I/O thread, three quarters of that thread's GIL time (its stream state machines, a full HPACK
encode per request, and a walk over every open stream for each new one). A client that only
POSTs needs a small part of the protocol, written here against RFC 9113:

- requests: one HEADERS frame (HPACK literals, never added to the dynamic table, so the block
  for a given target and headers is encoded once and reused), then DATA within the server's
  flow-control windows, the last frame with END_STREAM;
- answers: HEADERS (+ CONTINUATION) decoded in order on one ``hpack.Decoder``, then DATA;
- SETTINGS (acknowledged; initial window, frame size, concurrent streams applied), PING
  (answered), WINDOW_UPDATE, RST_STREAM (REFUSED_STREAM means not processed), GOAWAY: the
  streams up to its ``last_stream_id`` are still answered; the newer ones were not processed and
  go back to the pool for a new connection. nginx sends one after 1000 requests by default,
  cloud load balancers on their own schedule;
- anything the server is not allowed to send (a push, an oversized frame, broken HPACK) ends
  the connection (:class:`ConnectionLostError`); its requests go out again elsewhere.

Answers to our streams are a few bytes, so our receive window (16 MiB) is topped up rarely.
"""

from __future__ import annotations

import struct

import hpack
import hpack.exceptions

from otel_sentry._internal.sentry.wire.message import (
    ConnectionLostError,
    Headers,
    Request,
    Response,
)

__all__ = ["Http2"]

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FRAME = struct.Struct(">BHBBI")  # length (24 bits, as 8 + 16), type, flags, stream id
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")

_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
_PUSH_PROMISE, _PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x4, 0x8, 0x20
_NO_ERROR, _PROTOCOL_ERROR, _REFUSED_STREAM, _CANCEL = 0x0, 0x1, 0x7, 0x8
_HEADER_TABLE_SIZE, _ENABLE_PUSH, _MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
_INITIAL_WINDOW_SIZE, _MAX_FRAME_SIZE = 0x4, 0x5

_DEFAULT_WINDOW = 65_535
_DEFAULT_FRAME = 16_384  # what we accept, and what we send until the server allows more
_MAX_WINDOW = (1 << 31) - 1
# Our receive window: answers are a few bytes, but one generous window saves WINDOW_UPDATEs.
_WINDOW = 1 << 24
# Streams used before the server's SETTINGS arrive (the RFC's default is unlimited).
_FIRST_STREAMS = 100
# A connection gives way to a new one before its stream ids run out (2^31).
_MAX_STREAM_ID = (1 << 31) - 1024

# HPACK static table indexes (RFC 7541, appendix A) of the names we send.
_STATIC_NAMES = {
    ":authority": 1,
    ":path": 4,
    "content-encoding": 26,
    "content-length": 28,
    "content-type": 31,
    "user-agent": 58,
}
# Sent as "never indexed": intermediaries must not keep them in a compression table either.
_SENSITIVE = frozenset({"authorization", "x-sentry-auth"})


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _FRAME.pack(n >> 16, n & 0xFFFF, kind, flags, stream) + payload


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541, 5.1) whose first byte carries ``first`` in its high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _integer(len(raw), 7, 0) + raw  # not Huffman coded: cheaper, a few bytes longer


def _literal(name: str, value: str) -> bytes:
    """A header as a literal the decoder does not index (RFC 7541, 6.2.2 and 6.2.3)."""
    first = 0x10 if name in _SENSITIVE else 0x00
    index = _STATIC_NAMES.get(name)
    if index is not None:
        return _integer(index, 4, first) + _string(value)
    return bytes([first]) + _string(name) + _string(value)


class _Stream:
    __slots__ = ("body", "chunks", "headers", "received", "request", "status", "window")

    def __init__(self, request: Request, window: int) -> None:
        self.request = request
        self.window = window  # what we may still send on it
        self.body = memoryview(request.body)  # not yet sent
        self.status = 0
        self.headers = Headers()
        self.chunks: list[bytes] = []
        self.received = 0


class Http2:
    """The codec of one HTTP/2 connection; ``outbound()`` is what to write to the socket."""

    protocol = "h2"

    def __init__(self, authority: str, max_streams: int) -> None:
        self._authority = authority
        self._max_streams = max_streams
        settings = b"".join(
            _SETTING.pack(k, v) for k, v in ((_ENABLE_PUSH, 0), (_INITIAL_WINDOW_SIZE, _WINDOW))
        )
        self._out = bytearray(_PREFACE)
        self._out += _frame(_SETTINGS, 0, 0, settings)
        self._out += _frame(_WINDOW_UPDATE, 0, 0, _U32.pack(_WINDOW - _DEFAULT_WINDOW))
        self._in = bytearray()
        self._decoder = hpack.Decoder()
        self._blocks: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}
        # Our dynamic table is declared empty once, at the start of the first header block:
        # we never add to it, so no later change of the server's table size needs signalling.
        self._table_declared = False
        self._next_stream = 1
        self._streams: dict[int, _Stream] = {}
        self._send_window = _DEFAULT_WINDOW  # the connection's, for our DATA
        self._stream_window = _DEFAULT_WINDOW  # the server's initial window for new streams
        self._max_frame = _DEFAULT_FRAME
        self._peer_streams = _MAX_WINDOW
        self._settled = False  # the server's SETTINGS arrived
        self._unacked = 0  # answer bytes received since our last connection WINDOW_UPDATE
        self._continued: tuple[int, int, bytearray] | None = None  # a header block in pieces
        self.closing = False
        self.error: ConnectionLostError | None = None
        self._done: list[tuple[Request, Response]] = []
        self._again: list[tuple[Request, bool]] = []

    # -- the pool's calls -------------------------------------------------------------------------
    def capacity(self) -> int:
        if self.closing:
            return 0
        limit = self._peer_streams if self._settled else min(self._peer_streams, _FIRST_STREAMS)
        return max(0, min(limit, self._max_streams) - len(self._streams))

    def in_flight(self) -> list[Request]:
        return [stream.request for stream in self._streams.values()]

    def outbound(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, request: Request) -> None:
        stream_id = self._next_stream
        self._next_stream += 2
        if self._next_stream >= _MAX_STREAM_ID:
            self.closing = True
        block = self._header_block(request)
        body = request.body
        max_frame = self._max_frame
        flags = 0 if body else _END_STREAM
        if len(block) <= max_frame:
            self._out += _frame(_HEADERS, flags | _END_HEADERS, stream_id, block)
        else:  # only with huge headers: the rest of the block in CONTINUATION frames
            self._out += _frame(_HEADERS, flags, stream_id, block[:max_frame])
            for start in range(max_frame, len(block), max_frame):
                last = start + max_frame >= len(block)
                piece = block[start : start + max_frame]
                self._out += _frame(_CONTINUATION, _END_HEADERS if last else 0, stream_id, piece)
        stream = _Stream(request, self._stream_window)
        self._streams[stream_id] = stream
        if body:
            self._push(stream_id, stream)

    def cancel(self, request: Request) -> None:
        """Give up on one stream (its deadline passed); the others go on."""
        for stream_id, stream in list(self._streams.items()):
            if stream.request is request:
                del self._streams[stream_id]
                self._out += _frame(_RST_STREAM, 0, stream_id, _U32.pack(_CANCEL))

    def goodbye(self) -> None:
        self.closing = True
        self._out += _frame(_GOAWAY, 0, 0, _U32.pack(0) + _U32.pack(_NO_ERROR))

    def lost(self) -> list[Request]:
        self.closing = True
        left = self.in_flight()
        self._streams.clear()
        return left

    # -- sending ----------------------------------------------------------------------------------
    def _header_block(self, request: Request) -> bytes:
        key = (request.target, tuple(request.headers))
        block = self._blocks.get(key)
        if block is None:
            fields = [
                b"\x83",  # :method POST (static index 3)
                b"\x87",  # :scheme https (static index 7)
                _literal(":authority", self._authority),
                _literal(":path", request.target),
            ]
            fields += [
                _literal(name.lower(), value)
                for name, value in request.headers
                if name.lower() != "content-length"
            ]
            block = b"".join(fields)
            if len(self._blocks) >= 16:  # targets and headers hardly ever change
                self._blocks.clear()
            self._blocks[key] = block
        block += _literal("content-length", str(len(request.body)))
        if not self._table_declared:
            self._table_declared = True
            block = b"\x20" + block  # dynamic table size update: 0
        return block

    def _push(self, stream_id: int, stream: _Stream) -> None:
        body = stream.body
        while body:
            n = min(len(body), stream.window, self._send_window, self._max_frame)
            if n <= 0:
                break  # the rest goes when the server opens its window
            last = n == len(body)
            self._out += _frame(_DATA, _END_STREAM if last else 0, stream_id, body[:n].tobytes())
            stream.window -= n
            self._send_window -= n
            body = body[n:]
        stream.body = body

    def _push_all(self) -> None:
        for stream_id, stream in self._streams.items():
            if stream.body:
                self._push(stream_id, stream)
                if self._send_window <= 0:
                    return

    # -- receiving --------------------------------------------------------------------------------
    def feed(
        self, data: bytes
    ) -> tuple[list[tuple[Request, Response]], list[tuple[Request, bool]]]:
        """Bytes from the server: the requests answered, and those to send again elsewhere
        (with True where the server said it had not processed them). After a protocol error
        ``error`` is set and the connection must be dropped."""
        buf = self._in
        buf += data
        offset, size = 0, len(buf)
        try:
            while size - offset >= 9 and self.error is None:
                high, low, kind, flags, stream_id = _FRAME.unpack_from(buf, offset)
                length = high << 16 | low
                if length > _DEFAULT_FRAME:
                    raise ConnectionLostError(f"HTTP/2 frame of {length} bytes: over our limit")
                end = offset + 9 + length
                if end > size:
                    break
                payload = bytes(buf[offset + 9 : end])
                offset = end
                self._frame_received(kind, flags, stream_id & _MAX_WINDOW, payload)
        except ConnectionLostError as exc:
            # What was answered before the bad frame is still answered; the pool then drops
            # the connection and sends the rest again.
            self.error = exc
            self.closing = True
        finally:
            del buf[:offset]
        done, again = self._done, self._again
        self._done, self._again = [], []
        return done, again

    def _frame_received(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continued is not None and kind != _CONTINUATION:
            raise ConnectionLostError("HTTP/2 protocol error: a header block was interrupted")
        if kind == _DATA:
            self._data(flags, stream_id, payload)
        elif kind == _HEADERS:
            fragment = _unpadded(flags, payload)
            if flags & _PRIORITY_FLAG:
                fragment = fragment[5:]
            if flags & _END_HEADERS:
                self._headers(stream_id, flags, fragment)
            else:
                self._continued = (stream_id, flags, bytearray(fragment))
        elif kind == _CONTINUATION:
            if self._continued is None or self._continued[0] != stream_id:
                raise ConnectionLostError("HTTP/2 protocol error: an unexpected CONTINUATION")
            self._continued[2].extend(payload)
            if flags & _END_HEADERS:
                _, first_flags, block = self._continued
                self._continued = None
                self._headers(stream_id, first_flags, bytes(block))
        elif kind == _SETTINGS:
            if not flags & _ACK:
                self._settings(payload)
        elif kind == _WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == _RST_STREAM:
            stream = self._streams.pop(stream_id, None)
            if stream is not None:
                code = _U32.unpack_from(payload)[0] if len(payload) >= 4 else _PROTOCOL_ERROR
                self._again.append((stream.request, code == _REFUSED_STREAM))
        elif kind == _PING:
            if not flags & _ACK:
                self._out += _frame(_PING, _ACK, 0, payload)
        elif kind == _GOAWAY:
            self._goaway(payload)
        elif kind == _PUSH_PROMISE:
            raise ConnectionLostError("HTTP/2 protocol error: a push, which we disabled")
        # PRIORITY and frame types we do not know are ignored, as the RFC asks.

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        # Flow control counts the whole frame, padding included.
        self._unacked += len(payload)
        if self._unacked >= _WINDOW // 2:
            self._out += _frame(_WINDOW_UPDATE, 0, 0, _U32.pack(self._unacked))
            self._unacked = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # a stream we cancelled: its bytes still counted for the connection
        stream.chunks.append(_unpadded(flags, payload))
        stream.received += len(payload)
        if flags & _END_STREAM:
            self._finish(stream_id)
        elif stream.received >= _WINDOW // 2:
            self._out += _frame(_WINDOW_UPDATE, 0, stream_id, _U32.pack(stream.received))
            stream.received = 0

    def _headers(self, stream_id: int, flags: int, block: bytes) -> None:
        try:  # decoded even for streams we gave up on: the table is the connection's
            fields = self._decoder.decode(block, raw=True)
        except (hpack.exceptions.HPACKError, ValueError) as exc:
            raise ConnectionLostError(f"HTTP/2 protocol error: bad HPACK: {exc}") from exc
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if not stream.status:  # the answer's headers (trailers, if any, are not kept)
            headers = Headers()
            status = 0
            for name, value in fields:
                key, text = bytes(name).decode("latin-1"), bytes(value).decode("latin-1")
                if key == ":status":
                    status = int(text) if text.isdigit() else 0
                else:
                    headers[key] = text
            if 100 <= status < 200 and not flags & _END_STREAM:
                return  # informational: the answer follows
            stream.status, stream.headers = status, headers
        if flags & _END_STREAM:
            self._finish(stream_id)

    def _finish(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id)
        if stream.body:  # answered before we sent all of it (a 413, say): stop sending
            self._out += _frame(_RST_STREAM, 0, stream_id, _U32.pack(_NO_ERROR))
        if stream.status:
            answer = Response(stream.status, stream.headers, b"".join(stream.chunks))
            self._done.append((stream.request, answer))
        else:
            self._again.append((stream.request, False))

    def _settings(self, payload: bytes) -> None:
        if len(payload) % 6:
            raise ConnectionLostError("HTTP/2 protocol error: a malformed SETTINGS frame")
        for offset in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, offset)
            if key == _MAX_CONCURRENT_STREAMS:
                self._peer_streams = value
            elif key == _INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise ConnectionLostError("HTTP/2 flow-control error: window over 2^31-1")
                delta, self._stream_window = value - self._stream_window, value
                for stream in self._streams.values():
                    stream.window += delta
            elif key == _MAX_FRAME_SIZE:
                if not _DEFAULT_FRAME <= value <= (1 << 24) - 1:
                    raise ConnectionLostError(f"HTTP/2 protocol error: frame size {value}")
                self._max_frame = value
            # HEADER_TABLE_SIZE: our table is empty for good (see _header_block); the rest
            # concern a server or are advisory.
        self._settled = True
        self._out += _frame(_SETTINGS, _ACK, 0)
        self._push_all()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionLostError("HTTP/2 protocol error: a malformed WINDOW_UPDATE")
        increment = _U32.unpack(payload)[0] & _MAX_WINDOW
        if stream_id == 0:
            if increment == 0 or self._send_window + increment > _MAX_WINDOW:
                raise ConnectionLostError("HTTP/2 flow-control error on the connection")
            self._send_window += increment
            self._push_all()
            return
        stream = self._streams.get(stream_id)
        if stream is not None and increment:
            stream.window += increment
            if stream.body:
                self._push(stream_id, stream)

    def _goaway(self, payload: bytes) -> None:
        if len(payload) < 8:
            raise ConnectionLostError("HTTP/2 protocol error: a malformed GOAWAY")
        self.closing = True
        last = _U32.unpack_from(payload)[0] & _MAX_WINDOW
        # Streams past last_stream_id were never processed: safe to send elsewhere. The others
        # are still answered on this connection (a graceful close), or lost with it.
        for stream_id in [s for s in self._streams if s > last]:
            self._again.append((self._streams.pop(stream_id).request, True))


def _unpadded(flags: int, payload: bytes) -> bytes:
    if not flags & _PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ConnectionLostError("HTTP/2 protocol error: padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]
