"""The ingest endpoints over real HTTP: auth, framing, compression, Spotlight, keep-alive."""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Callable

import brotli
import httpx
import pytest
import zstandard

from otel_sentry.inbox import Inbox, encode_envelope

from .conftest import auth_header, sentry_client

EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"
EVENT = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hello","level":"info"}'
HEADER = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}'
ENVELOPE = HEADER + b'\n{"type":"event","length":%d}\n' % len(EVENT) + EVENT + b"\n"


def _deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _deflate_raw),
        ("br", brotli.compress),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_every_compression_over_http(
    inbox: Inbox,
    send_envelope: Callable[..., httpx.Response],
    encoding: str | None,
    compress: Callable[[bytes], bytes],
) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = send_envelope(compress(ENVELOPE), headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": EVENT_ID}
    [received] = inbox.envelopes
    assert received.project_id == 1
    assert received.path == "/api/1/envelope/"
    assert received.headers.get("content-encoding") == encoding
    assert inbox.events() == [{"event_id": EVENT_ID, "message": "hello", "level": "info"}]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(ENVELOPE, id="length-prefixed"),
        pytest.param(ENVELOPE.rstrip(b"\n"), id="length-prefixed, no trailing newline"),
        pytest.param(HEADER + b'\n{"type":"event"}\n' + EVENT + b"\n", id="newline-delimited"),
        pytest.param(HEADER + b'\n{"type":"event"}\n' + EVENT, id="newline, no trailing newline"),
    ],
)
def test_framings_over_http(
    inbox: Inbox, send_envelope: Callable[..., httpx.Response], body: bytes
) -> None:
    assert send_envelope(body).status_code == 200
    assert [e["message"] for e in inbox.events()] == ["hello"]


@pytest.mark.parametrize(
    ("body", "headers", "kind", "detail"),
    [
        (b"nope\n", {}, "parse", "envelope header at byte 0 is not valid JSON"),
        (HEADER + b'\n{"type":"event","length":999}\n{}\n', {}, "parse", "declares length 999"),
        (ENVELOPE, {"Content-Encoding": "gzip"}, "encoding", "not valid gzip data"),
        (ENVELOPE, {"Content-Encoding": "lzma"}, "encoding", "unsupported Content-Encoding"),
    ],
)
def test_malformed_envelopes_are_rejected_with_400(
    inbox: Inbox,
    send_envelope: Callable[..., httpx.Response],
    body: bytes,
    headers: dict[str, str],
    kind: str,
    detail: str,
) -> None:
    response = send_envelope(body, headers)
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert inbox.envelopes == []
    counts = inbox.counts
    assert counts.rejected == {kind: 1}
    assert detail in counts.rejections[-1]
    assert counts.requests == 1 and counts.envelopes == 0


@pytest.mark.parametrize(
    ("headers", "query", "status", "detail"),
    [
        ({}, "", 403, "missing authorization information"),
        (auth_header("f" * 32), "", 403, "invalid sentry_key 'ffffffffffffffffffffffffffffffff'"),
        ({"X-Sentry-Auth": "Sentry sentry_version=7"}, "", 403, "missing authorization"),
        ({}, "?sentry_version=7&sentry_key=wrong", 403, "invalid sentry_key 'wrong'"),
        ({}, "?sentry_version=7&sentry_key={key}", 200, None),
        ({"x-sentry-auth": "sentry sentry_key={key}"}, "", 200, None),
    ],
)
def test_auth(
    inbox: Inbox,
    http: httpx.Client,
    headers: dict[str, str],
    query: str,
    status: int,
    detail: str | None,
) -> None:
    headers = {k: v.format(key=inbox.public_key) for k, v in headers.items()}
    url = f"{inbox.url}/api/7/envelope/{query.format(key=inbox.public_key)}"
    response = http.post(url, content=ENVELOPE, headers=headers)
    assert response.status_code == status
    if detail is None:
        assert [e.project_id for e in inbox.envelopes] == [7]
    else:
        assert detail in response.json()["detail"]
        assert inbox.envelopes == []
        assert inbox.counts.rejected == {"auth": 1}


def test_spotlight_stream_needs_no_auth(inbox: Inbox, http: httpx.Client) -> None:
    body = encode_envelope(
        {"event_id": EVENT_ID, "dsn": "https://k@o1.ingest.sentry.io/42"},
        [({"type": "event"}, {"message": "spot"})],
    )
    response = http.post(f"{inbox.url}/stream", content=body)
    assert response.status_code == 200
    [received] = inbox.envelopes
    assert (received.path, received.project_id) == ("/stream", 42)


def test_real_sentry_sdk_lands_events_and_transactions(inbox: Inbox) -> None:
    with sentry_client(inbox.dsn(3), release="1.2.3") as client:
        import sentry_sdk

        with sentry_sdk.start_transaction(name="GET /orders", op="http.server"):
            with sentry_sdk.start_span(op="db", name="SELECT 1"):
                pass
            sentry_sdk.capture_message("boom", level="error")
        client.flush(5)
    [event_item] = inbox.wait_for_items("event")
    [tx] = inbox.transactions()
    assert event_item.envelope.project_id == 3
    assert event_item.json["release"] == "1.2.3"
    assert tx["transaction"] == "GET /orders"
    assert [s["op"] for s in tx["spans"]] == ["db"]
    assert event_item.envelope.headers["content-encoding"] == "br"
    assert inbox.problems == []


def test_keep_alive_serves_many_requests_on_one_connection(
    inbox: Inbox, send_envelope: Callable[..., httpx.Response]
) -> None:
    ports = set()
    for _ in range(5):
        response = send_envelope(ENVELOPE)
        assert response.status_code == 200
        assert response.http_version == "HTTP/1.1"
        ports.add(response.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(ports) == 1
    assert len(inbox.envelopes) == 5


def test_chunked_body(inbox: Inbox, http: httpx.Client) -> None:
    def chunks() -> object:
        yield ENVELOPE[:10]
        yield ENVELOPE[10:]

    response = http.post(
        f"{inbox.url}/api/1/envelope/",
        content=chunks(),  # type: ignore[arg-type]
        headers=auth_header(inbox.public_key),
    )
    assert response.status_code == 200
    assert len(inbox.events()) == 1


def test_unknown_route_is_404_and_cors_preflight_allowed(inbox: Inbox, http: httpx.Client) -> None:
    assert http.post(f"{inbox.url}/api/1/store/", content=b"{}").status_code == 404
    preflight = http.options(f"{inbox.url}/api/1/envelope/")
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_wait_for_items_times_out_listing_what_arrived(
    inbox: Inbox, send_envelope: Callable[..., httpx.Response]
) -> None:
    send_envelope(ENVELOPE)
    send_envelope(b"garbage")
    with pytest.raises(TimeoutError) as caught:
        inbox.wait_for_items("transaction", timeout=0.2)
    message = str(caught.value)
    assert "expected 1 'transaction' item(s) within 0.2s but got 0" in message
    assert "eventx1" in message and "rejected {'parse': 1}" in message


def test_wait_for_wakes_when_an_envelope_arrives(
    inbox: Inbox, send_envelope: Callable[..., httpx.Response]
) -> None:
    timer = threading.Timer(0.1, send_envelope, args=(ENVELOPE,))
    timer.start()
    try:
        assert inbox.wait_for(lambda i: len(i.events()) == 1, timeout=5)
    finally:
        timer.join()
    assert not inbox.wait_for(lambda i: len(i.events()) == 2, timeout=0.05)


def test_stop_closes_the_socket_and_idle_connections() -> None:
    inbox = Inbox().start()
    port = inbox.port
    idle = socket.create_connection(("127.0.0.1", port))
    # A request on the idle connection makes sure its handler thread is running.
    idle.sendall(b"GET /api/_inbox/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200 OK")
    inbox.stop()
    idle.settimeout(2)
    while idle.recv(4096):  # the rest of the answer, then EOF: the server closed it
        pass
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5)
    assert not [t for t in threading.enumerate() if t.name.startswith("inbox-")]
