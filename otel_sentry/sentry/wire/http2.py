"""HTTP/2 on one connection: many envelopes in flight at once, multiplexed as streams (``h2``).

Sentry's SaaS ingest offers h2 through ALPN. One connection then carries as many concurrent
POSTs as the server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` allows, so throughput stops depending
on the round trip. The framing, HPACK and flow control are the ``h2`` library's; this module
only maps requests to streams. A GOAWAY (nginx sends one after 1000 requests by default, cloud
load balancers on their own schedule) answers the streams up to its ``last_stream_id``; the
newer ones were not processed and go back to the pool for a new connection.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from otel_sentry.sentry.wire.message import ConnectionLostError, Headers, Request, Response

__all__ = ["Http2"]

# Our receive window: answers are a few bytes, but one generous window saves WINDOW_UPDATEs.
_WINDOW = 1 << 24
# Streams used before the server's SETTINGS arrive (the RFC's default is unlimited).
_FIRST_STREAMS = 100
# A connection gives way to a new one before its stream ids run out (2^31).
_MAX_STREAM_ID = (1 << 31) - 1024


class Http2:
    """The codec of one HTTP/2 connection; ``outbound()`` is what to write to the socket."""

    protocol = "h2"

    def __init__(self, authority: str, max_streams: int) -> None:
        # Header validation and normalization are h2's most expensive steps (a third of a
        # send's CPU here); we build our few headers ourselves and read two from Sentry.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding="utf-8",
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self._conn = h2.connection.H2Connection(config=config)
        self._conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0,
            },
        )
        table = self._conn._frame_dispatch_table
        table[hyperframe.frame.GoAwayFrame] = partial(
            self._graceful_goaway, table[hyperframe.frame.GoAwayFrame]
        )
        self._conn.initiate_connection()
        self._conn.increment_flow_control_window(_WINDOW - 65535)
        self._authority = authority
        self._max_streams = max_streams
        self._settled = False  # the server's SETTINGS arrived
        self.closing = False
        self._streams: dict[int, Request] = {}
        self._answers: dict[int, tuple[int, Headers, list[bytes]]] = {}
        self._unsent: dict[int, memoryview] = {}  # bodies waiting for flow-control window

    def _graceful_goaway(self, receive: Any, frame: hyperframe.frame.GoAwayFrame) -> Any:
        # h2 closes its state machine on any GOAWAY and then refuses the answers to the streams
        # the server still finishes, even those later in the same read (python-hyper/h2#1181):
        # those envelopes were accepted, and sending them again would duplicate them. After a
        # graceful GOAWAY it stays open to read them; ``closing`` keeps new streams off.
        result = receive(frame)
        if frame.error_code == h2.errors.ErrorCodes.NO_ERROR:
            self.closing = True
            self._conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result

    def capacity(self) -> int:
        if self.closing or self._conn.state_machine.state == h2.connection.ConnectionState.CLOSED:
            self.closing = True
            return 0
        limit = self._conn.remote_settings.max_concurrent_streams
        if not self._settled:
            limit = min(limit, _FIRST_STREAMS)
        return max(0, min(limit, self._max_streams) - len(self._streams))

    def in_flight(self) -> list[Request]:
        return list(self._streams.values())

    def outbound(self) -> bytes:
        return self._conn.data_to_send()

    def send(self, request: Request) -> None:
        stream = self._conn.get_next_available_stream_id()
        if stream >= _MAX_STREAM_ID:
            self.closing = True
        headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", self._authority),
            (":path", request.target),
            ("content-length", str(len(request.body))),
        ]
        headers.extend((k.lower(), v) for k, v in request.headers)
        self._conn.send_headers(stream, headers)
        self._streams[stream] = request
        self._push(stream, memoryview(request.body))

    def _push(self, stream: int, body: memoryview) -> None:
        conn = self._conn
        while body:
            window = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
            if window <= 0:
                self._unsent[stream] = body
                return
            conn.send_data(stream, body[:window].tobytes())
            body = body[window:]
        self._unsent.pop(stream, None)
        conn.end_stream(stream)

    def feed(
        self, data: bytes
    ) -> tuple[list[tuple[Request, Response]], list[tuple[Request, bool]]]:
        """Bytes from the server: the requests answered, and those to send again elsewhere
        (with True where the server said it had not processed them)."""
        done: list[tuple[Request, Response]] = []
        again: list[tuple[Request, bool]] = []
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise ConnectionLostError(f"HTTP/2 protocol error: {exc}") from exc
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                headers = Headers()
                status = 0
                for name, value in event.headers:
                    key = name.decode() if isinstance(name, bytes) else name
                    text = value.decode() if isinstance(value, bytes) else value
                    if key == ":status":
                        status = int(text)
                    else:
                        headers[key] = text
                if 100 <= status < 200:
                    continue
                self._answers[event.stream_id] = (status, headers, [])
            elif isinstance(event, h2.events.DataReceived):
                answer = self._answers.get(event.stream_id)
                if answer is not None:
                    answer[2].append(event.data)
                self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                request = self._streams.pop(event.stream_id, None)
                answer = self._answers.pop(event.stream_id, None)
                if request is not None and answer is not None:
                    status, headers, chunks = answer
                    done.append((request, Response(status, headers, b"".join(chunks))))
                elif request is not None:
                    again.append((request, False))
            elif isinstance(event, h2.events.StreamReset):
                request = self._streams.pop(event.stream_id, None)
                self._answers.pop(event.stream_id, None)
                self._unsent.pop(event.stream_id, None)
                if request is not None:
                    refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                    again.append((request, refused))
            elif isinstance(event, h2.events.WindowUpdated):
                for stream, body in list(self._unsent.items()):
                    if stream in self._streams:
                        self._push(stream, body)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._settled = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.closing = True
                last = event.last_stream_id if event.last_stream_id is not None else 0
                # Streams past last_stream_id were never processed: safe to send elsewhere.
                for stream in [s for s in self._streams if s > last]:
                    again.append((self._streams.pop(stream), True))
                    self._answers.pop(stream, None)
                    self._unsent.pop(stream, None)
        return done, again

    def cancel(self, request: Request) -> None:
        """Give up on one stream (its deadline passed); the others go on."""
        for stream, held in list(self._streams.items()):
            if held is request:
                del self._streams[stream]
                self._answers.pop(stream, None)
                self._unsent.pop(stream, None)
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)

    def goodbye(self) -> None:
        self.closing = True
        with contextlib.suppress(h2.exceptions.H2Error):
            self._conn.close_connection()

    def lost(self) -> list[Request]:
        self.closing = True
        left = list(self._streams.values())
        self._streams.clear()
        self._answers.clear()
        self._unsent.clear()
        return left
