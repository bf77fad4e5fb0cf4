"""Our HTTP/2 client codec against a real server implementation: ``h2``'s server side.

h2 (python-hyper) checks every frame it receives against RFC 9113: stream states, flow-control
windows, HPACK, SETTINGS acknowledgements. A frame of ours it would refuse raises here. The
server side does what servers do to a client: small windows, SETTINGS changes, PING, padding,
headers too big for one frame, REFUSED_STREAM, GOAWAY, garbage. The end-to-end paths (TLS, ALPN,
the pool, GOAWAY every N requests) are in test_wire.py and test_delivery.py.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from otel_sentry._internal.sentry.wire.http2 import Http2
from otel_sentry._internal.sentry.wire.message import Request, Response

SETTING = h2.settings.SettingCodes


class Server:
    """An h2 server connection that answers each complete request with ``answer(stream)``."""

    def __init__(self, **settings: int) -> None:
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings({getattr(SETTING, k): v for k, v in settings.items()})
        self.bodies: dict[int, bytearray] = {}
        self.headers: dict[int, dict[str, str]] = {}
        self.complete: list[int] = []
        self.events: list[Any] = []
        self.hold = False  # keep complete requests unanswered

    def receive(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            self.events.append(event)
            if isinstance(event, h2.events.RequestReceived):
                self.headers[event.stream_id] = dict(event.headers)
                self.bodies[event.stream_id] = bytearray()
            elif isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.complete.append(event.stream_id)
                if not self.hold:
                    self.answer(event.stream_id)

    def answer(self, stream_id: int, status: int = 200, **kwargs: Any) -> None:
        headers = [(":status", str(status)), ("content-type", "application/json")]
        headers += [(k.replace("_", "-"), v) for k, v in kwargs.pop("headers", {}).items()]
        self.conn.send_headers(stream_id, headers)
        self.conn.send_data(stream_id, b'{"id":"%d"}' % stream_id, end_stream=True, **kwargs)


class Client:
    def __init__(self, server: Server, max_streams: int = 100) -> None:
        self.codec = Http2("ingest.example:443", max_streams)
        self.server = server
        self.answers: list[tuple[Request, Response]] = []
        self.again: list[tuple[Request, bool]] = []

    def post(self, body: bytes, n: int = 1) -> list[Request]:
        requests = []
        for _ in range(n):
            request = Request("/api/1/envelope/", _HEADERS, body, lambda r, e: None)
            self.codec.send(request)
            requests.append(request)
        return requests

    def exchange(self, rounds: int = 20) -> None:
        """Bytes both ways until neither side has anything to say."""
        for _ in range(rounds):
            out = self.codec.outbound()
            if out:
                self.server.receive(out)
            back = self.server.conn.data_to_send()
            if not out and not back:
                return
            if back:
                done, again = self.codec.feed(back)
                assert self.codec.error is None, self.codec.error
                self.answers += done
                self.again += again
        raise AssertionError("the exchange did not settle")


_HEADERS = [
    ("User-Agent", "sentry.python/2.0"),
    ("X-Sentry-Auth", "Sentry sentry_key=abc, sentry_version=7"),
    ("Content-Type", "application/x-sentry-envelope"),
    ("Content-Encoding", "br"),
]


def test_requests_arrive_as_sent_and_are_answered() -> None:
    server = Server()
    client = Client(server)
    sent = client.post(b"envelope-1") + client.post(b"envelope-two")
    client.exchange()
    assert [bytes(b) for b in server.bodies.values()] == [b"envelope-1", b"envelope-two"]
    for headers in server.headers.values():
        assert headers[":method"] == "POST"
        assert headers[":scheme"] == "https"
        assert headers[":authority"] == "ingest.example:443"
        assert headers[":path"] == "/api/1/envelope/"
        assert headers["x-sentry-auth"] == "Sentry sentry_key=abc, sentry_version=7"
        assert headers["content-encoding"] == "br"
    assert [h["content-length"] for h in server.headers.values()] == ["10", "12"]
    assert [(r, a.status) for r, a in client.answers] == [(sent[0], 200), (sent[1], 200)]
    assert client.answers[0][1].data == b'{"id":"1"}'
    assert client.answers[0][1].headers.get("Content-Type") == "application/json"
    assert client.codec.in_flight() == []


def test_bodies_wait_for_the_servers_flow_control_window() -> None:
    # A 3000-byte window and 1000-byte frames: bodies go out in pieces, as WINDOW_UPDATEs come.
    server = Server(INITIAL_WINDOW_SIZE=3000, MAX_FRAME_SIZE=16384)
    client = Client(server)
    client.exchange()  # SETTINGS both ways first
    bodies = [bytes([65 + i]) * 70_000 for i in range(3)]  # over the connection's 65535 too
    for body in bodies:
        client.post(body)
    client.exchange(rounds=500)
    assert [bytes(b) for b in server.bodies.values()] == bodies
    assert len(client.answers) == 3


def test_settings_change_windows_and_stream_limits_mid_flight() -> None:
    server = Server(MAX_CONCURRENT_STREAMS=2)
    client = Client(server)
    client.exchange()
    assert client.codec.capacity() == 2
    server.hold = True
    client.post(b"x" * 100_000)  # blocked past the default window
    client.exchange()
    server.conn.update_settings({SETTING.INITIAL_WINDOW_SIZE: 200_000})
    server.conn.increment_flow_control_window(200_000)
    client.exchange()
    assert len(server.bodies[1]) == 100_000
    assert client.codec.capacity() == 1
    server.answer(1)
    client.exchange()
    assert len(client.answers) == 1 and client.codec.capacity() == 2


def test_ping_padding_continuation_and_dynamic_table_are_read() -> None:
    server = Server()
    client = Client(server)
    server.hold = True
    requests = client.post(b"a", n=3)
    client.exchange()
    server.conn.ping(b"12345678")
    # Headers bigger than a frame: h2 sends them as HEADERS + CONTINUATION.
    big = {"x_big": "v" * 40_000, "retry_after": "7"}
    server.answer(1, headers=big, pad_length=200)
    server.answer(3, status=429, headers={"x_sentry_rate_limits": "60:transaction"})
    server.answer(5, status=429, headers={"x_sentry_rate_limits": "60:transaction"})
    client.exchange()
    assert any(isinstance(e, h2.events.PingAckReceived) for e in server.events)
    answers = {id(r): a for r, a in client.answers}
    first = answers[id(requests[0])]
    assert first.status == 200 and first.data == b'{"id":"1"}'
    assert first.headers.get("x-big") == "v" * 40_000
    assert first.headers.get("retry-after") == "7"
    for request in requests[1:]:  # the repeat came from h2's dynamic table
        assert answers[id(request)].headers.get("X-Sentry-Rate-Limits") == "60:transaction"


def test_refused_streams_and_goaway_hand_back_what_was_not_processed() -> None:
    server = Server()
    client = Client(server)
    server.hold = True
    requests = client.post(b"e", n=4)  # streams 1, 3, 5, 7
    client.exchange()
    server.answer(1)
    server.conn.reset_stream(3, h2.errors.ErrorCodes.REFUSED_STREAM)
    client.exchange()
    # A graceful GOAWAY (last stream 5, NO_ERROR), written by hand: h2's server refuses to
    # answer anything after its own GOAWAY, which real servers (nginx) do.
    goaway = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes([0, 0, 0, 5, 0, 0, 0, 0])
    done, again = client.codec.feed(goaway)
    assert done == []
    client.again += again
    assert [r for r, _ in client.answers] == [requests[0]]
    assert (requests[1], True) in client.again  # refused: never processed
    assert (requests[3], True) in client.again  # past GOAWAY's last stream
    assert client.codec.in_flight() == [requests[2]]  # processed: its answer may still come
    assert client.codec.closing and client.codec.capacity() == 0
    server.answer(5)
    client.exchange()
    assert [r for r, _ in client.answers] == [requests[0], requests[2]]


def test_a_reset_after_processing_is_not_called_refused() -> None:
    server = Server()
    client = Client(server)
    server.hold = True
    [request] = client.post(b"e")
    client.exchange()
    server.conn.reset_stream(1, h2.errors.ErrorCodes.INTERNAL_ERROR)
    client.exchange()
    assert client.again == [(request, False)]


def test_garbage_ends_the_connection_but_keeps_earlier_answers() -> None:
    server = Server()
    client = Client(server)
    server.hold = True
    requests = client.post(b"e", n=2)
    client.exchange()
    server.answer(1)
    good = server.conn.data_to_send()
    # A frame of an unknown type is ignored; a push (disabled) is a protocol error.
    unknown = b"\x00\x00\x01\xfa\x00\x00\x00\x00\x00\xff"
    push = b"\x00\x00\x04\x05\x04\x00\x00\x00\x03\x00\x00\x00\x02"
    done, again = client.codec.feed(good + unknown + push)
    assert [r for r, _ in done] == [requests[0]] and again == []
    assert client.codec.error is not None and client.codec.capacity() == 0
    assert client.codec.lost() == [requests[1]]
