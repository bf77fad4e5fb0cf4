"""A bare HTTP/2 client for the TLS inbox's tests: it writes and reads frames itself.

Not h2's client: h2 moves a connection to CLOSED on receiving GOAWAY and then rejects the very
answers the GOAWAY promised (python-hyper/h2#1181), so a test of a graceful GOAWAY needs a
client that records every frame the server sent, in order, and nothing more.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from otel_sentry.inbox import Inbox

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_BIG_WINDOW = 2**30  # answers never wait on this client's windows


@dataclass
class Answer:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    at: float | None = None  # monotonic time the answer completed


class RawH2:
    """One TLS connection offering only ``h2``; streams are opened with :meth:`post`."""

    def __init__(self, inbox: Inbox, timeout: float = 10.0) -> None:
        context = inbox.ssl_context()
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", inbox.port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.alpn = self.sock.selected_alpn_protocol()
        self.authority = f"127.0.0.1:{inbox.port}"
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.next_stream = 1
        self.buffer = b""
        self.settings: dict[int, int] = {}
        self.answers: dict[int, Answer] = {}
        self.resets: dict[int, int] = {}
        self.goaway: GoAwayFrame | None = None
        self.closed = False
        initial = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: _BIG_WINDOW})
        grow = WindowUpdateFrame(0, window_increment=_BIG_WINDOW)
        self.sock.sendall(PREFACE + initial.serialize() + grow.serialize())

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        """Open a stream with a POST of ``body`` (under 16 KiB, one DATA frame); its id."""
        stream_id = self.next_stream
        self.next_stream += 2
        block = self.encoder.encode(
            [
                (":method", "POST"),
                (":scheme", "https"),
                (":authority", self.authority),
                (":path", path),
                *((name.lower(), value) for name, value in (headers or {}).items()),
            ]
        )
        frames: list[Frame] = [
            HeadersFrame(stream_id, block, flags=["END_HEADERS"]),
            DataFrame(stream_id, body, flags=["END_STREAM"]),
        ]
        self.sock.sendall(b"".join(frame.serialize() for frame in frames))
        self.answers[stream_id] = Answer()
        return stream_id

    def read_until_closed(self, timeout: float = 10.0) -> None:
        """Record frames until the server closes the connection."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            assert time.monotonic() < deadline, "the server did not close the connection"
            self._read_frame()

    def read_until_answered(self, stream_ids: list[int], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.answers[s].ended or s in self.resets for s in stream_ids):
            assert not self.closed, "the server closed the connection before answering"
            assert time.monotonic() < deadline, "the server did not answer in time"
            self._read_frame()

    def read_settings(self) -> dict[int, int]:
        while not self.settings and not self.closed:
            self._read_frame()
        return self.settings

    def close(self) -> None:
        self.sock.close()

    def _read_exactly(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                self.closed = True
                return None
            self.buffer += data
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return chunk

    def _read_frame(self) -> None:
        header = self._read_exactly(9)
        if header is None:
            return
        frame, length = Frame.parse_frame_header(memoryview(header))
        payload = self._read_exactly(length)
        if payload is None:
            return
        frame.parse_body(memoryview(payload))
        self._record(frame)

    def _record(self, frame: Frame) -> None:
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            self.settings.update(frame.settings)
            self.sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            ack = PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"])
            self.sock.sendall(ack.serialize())
        elif isinstance(frame, GoAwayFrame):
            self.goaway = frame
        elif isinstance(frame, RstStreamFrame):
            self.resets[frame.stream_id] = frame.error_code
        elif isinstance(frame, HeadersFrame):
            answer = self.answers[frame.stream_id]
            headers = {_text(n): _text(v) for n, v in self.decoder.decode(frame.data)}
            answer.status = int(headers.pop(":status"))
            answer.headers = headers
            self._end(answer, frame)
        elif isinstance(frame, DataFrame):
            answer = self.answers[frame.stream_id]
            answer.body += frame.data
            self._end(answer, frame)

    @staticmethod
    def _end(answer: Answer, frame: Frame) -> None:
        if "END_STREAM" in frame.flags:
            answer.ended = True
            answer.at = time.monotonic()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
