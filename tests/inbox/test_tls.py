"""``Inbox(tls=True)``: HTTPS with HTTP/2 and HTTP/1.1, as real clients and the raw wire see it."""

from __future__ import annotations

import base64
import gzip
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sentry_sdk
from h2.errors import ErrorCodes
from hyperframe.frame import SettingsFrame

from otel_sentry.inbox import Fault, Inbox, encode_envelope

from .conftest import auth_header, sentry_client
from .raw_h2 import RawH2

EVENT_ID = "a" * 32
ENVELOPE = encode_envelope(
    {"event_id": EVENT_ID}, [({"type": "event"}, {"message": "over tls", "level": "info"})]
)


@pytest.fixture
def tls_inbox() -> Iterator[Inbox]:
    with Inbox(tls=True) as inbox:
        yield inbox


def _client(inbox: Inbox, http2: bool) -> httpx.Client:
    return httpx.Client(http2=http2, verify=inbox.ssl_context(), timeout=10)


def _post(client: httpx.Client, inbox: Inbox, body: bytes, **headers: str) -> httpx.Response:
    return client.post(
        f"{inbox.url}/api/1/envelope/",
        content=body,
        headers={**auth_header(inbox.public_key), **headers},
    )


def _alpn(inbox: Inbox, offered: list[str]) -> str | None:
    context = inbox.ssl_context()
    context.set_alpn_protocols(offered)
    with (
        socket.create_connection(("127.0.0.1", inbox.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        return sock.selected_alpn_protocol()


def test_addresses_and_ca_file() -> None:
    with Inbox(tls=True) as inbox:
        assert inbox.url == f"https://127.0.0.1:{inbox.port}"
        assert inbox.dsn(3) == f"https://{inbox.public_key}@127.0.0.1:{inbox.port}/3"
        assert inbox.ca_file is not None
        assert Path(inbox.ca_file).read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert oct(Path(inbox.ca_file).parent.stat().st_mode & 0o777) == "0o700"
    with Inbox() as plain:
        assert plain.url.startswith("http://")
        assert plain.ca_file is None
        with pytest.raises(RuntimeError, match="needs a running Inbox\\(tls=True\\)"):
            plain.ssl_context()


def test_http2_client_delivers_an_envelope(tls_inbox: Inbox) -> None:
    assert _alpn(tls_inbox, ["h2", "http/1.1"]) == "h2"
    with _client(tls_inbox, http2=True) as client:
        response = _post(client, tls_inbox, gzip.compress(ENVELOPE), **{"Content-Encoding": "gzip"})
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200, response.text
    assert response.json() == {"id": EVENT_ID}
    assert response.headers["access-control-allow-origin"] == "*"
    [received] = tls_inbox.envelopes
    assert received.http_version == "HTTP/2"
    assert received.path == "/api/1/envelope/"
    assert received.headers["host"] == f"127.0.0.1:{tls_inbox.port}"
    assert received.headers["content-encoding"] == "gzip"
    assert tls_inbox.events() == [{"message": "over tls", "level": "info"}]
    assert tls_inbox.problems == []


@pytest.mark.parametrize("http2", [True, False], ids=["HTTP/2", "HTTP/1.1"])
def test_large_envelope_in_and_large_answer_out(tls_inbox: Inbox, http2: bool) -> None:
    # Far beyond HTTP/2's 64 KiB initial windows, in both directions.
    attachment = os.urandom(6 * 1024 * 1024)
    body = encode_envelope(
        {"event_id": EVENT_ID}, [({"type": "attachment", "filename": "dump.bin"}, attachment)]
    )
    with _client(tls_inbox, http2) as client:
        assert _post(client, tls_inbox, body).status_code == 200
        listing = client.get(f"{tls_inbox.url}/api/_inbox/envelopes")
    assert listing.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    [envelope] = listing.json()
    [item] = envelope["items"]
    assert item["payload_encoding"] == "base64"
    assert base64.b64decode(item["payload"]) == attachment
    assert [i.payload for i in tls_inbox.items("attachment")] == [attachment]


@pytest.mark.parametrize(
    ("inbox_http2", "client_http2"),
    [(False, True), (True, False)],
    ids=["inbox offers http/1.1 only", "client offers http/1.1 only"],
)
def test_http1_over_tls(inbox_http2: bool, client_http2: bool) -> None:
    with Inbox(tls=True, http2=inbox_http2) as inbox:
        offered = ["h2", "http/1.1"] if client_http2 else ["http/1.1"]
        assert _alpn(inbox, offered) == "http/1.1"
        with _client(inbox, client_http2) as client:
            first = _post(client, inbox, ENVELOPE)
            # A chunked upload on the same kept-alive connection.
            chunked = client.post(
                f"{inbox.url}/api/1/envelope/",
                content=iter([ENVELOPE[:20], ENVELOPE[20:]]),
                headers=auth_header(inbox.public_key),
            )
        assert (first.http_version, first.status_code) == ("HTTP/1.1", 200)
        assert (chunked.http_version, chunked.status_code) == ("HTTP/1.1", 200)
        assert [e.http_version for e in inbox.envelopes] == ["HTTP/1.1", "HTTP/1.1"]
        assert inbox.counts.requests == 2


@pytest.mark.parametrize("http2", [True, False], ids=["HTTP/2", "HTTP/1.1"])
def test_every_endpoint_behaves_as_in_plain_mode(tls_inbox: Inbox, http2: bool) -> None:
    url = tls_inbox.url
    with _client(tls_inbox, http2) as client:
        preflight = client.options(f"{url}/api/1/envelope/")
        assert preflight.status_code == 204
        assert preflight.headers["access-control-expose-headers"].startswith("X-Sentry-Rate")
        denied = client.post(f"{url}/api/1/envelope/", content=ENVELOPE)
        assert denied.status_code == 403
        assert "missing authorization" in denied.json()["detail"]
        assert _post(client, tls_inbox, b"nope\n").status_code == 400
        otlp = client.post(
            f"{url}/v1/traces", content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert otlp.status_code == 200
        set_fault = client.post(
            f"{url}/api/_inbox/fault", json={"status": 429, "rate_limits": "60::organization"}
        )
        assert set_fault.json()["fault"]["status"] == 429
        limited = _post(client, tls_inbox, ENVELOPE)
        assert limited.status_code == 429
        assert limited.headers["x-sentry-rate-limits"] == "60::organization"
        client.delete(f"{url}/api/_inbox/fault")
        assert _post(client, tls_inbox, ENVELOPE).status_code == 200
        stats = client.get(f"{url}/api/_inbox/stats").json()
        assert client.get(f"{url}/nowhere").status_code == 404
    assert stats["counts"]["requests"] == 5
    assert stats["counts"]["faulted"] == 1
    assert [e["message"] for e in tls_inbox.events()] == ["over tls"]


@pytest.mark.parametrize("transport_http2", [False, True], ids=["urllib3", "httpcore h2"])
def test_sentry_sdk_delivers_over_tls(tls_inbox: Inbox, transport_http2: bool) -> None:
    assert tls_inbox.ca_file is not None
    with sentry_client(
        tls_inbox.dsn(),
        ca_certs=tls_inbox.ca_file,
        _experiments={"transport_http2": transport_http2},
        # Integrations patch libraries process-wide for good (SQLAlchemy's among them): this
        # test is about the wire, and later tests of the process must find them untouched.
        default_integrations=False,
        auto_enabling_integrations=False,
    ):
        sentry_sdk.capture_message("hello over https", level="error")
    [item] = tls_inbox.wait_for_items("event")
    assert item.json is not None
    assert item.json["message"] == "hello over https"
    assert item.envelope.http_version == ("HTTP/2" if transport_http2 else "HTTP/1.1")
    assert tls_inbox.problems == []


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_inbox: Inbox) -> None:
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", tls_inbox.port), timeout=5) as raw,
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    with httpx.Client() as untrusting, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
        _post(untrusting, tls_inbox, ENVELOPE)
    assert tls_inbox.counts.requests == 0
    # and the inbox still serves those who trust it
    with _client(tls_inbox, http2=True) as client:
        assert _post(client, tls_inbox, ENVELOPE).status_code == 200


def test_max_concurrent_streams_is_advertised() -> None:
    with Inbox(tls=True) as default, Inbox(tls=True, h2_max_streams=7) as lowered:
        for inbox, expected in ((default, 100), (lowered, 7)):
            client = RawH2(inbox)
            assert client.alpn == "h2"
            assert client.read_settings()[SettingsFrame.MAX_CONCURRENT_STREAMS] == expected
            client.close()


def test_delays_of_concurrent_streams_overlap(tls_inbox: Inbox) -> None:
    tls_inbox.set_fault(Fault(delay=0.15))
    client = RawH2(tls_inbox)
    headers = auth_header(tls_inbox.public_key)
    started = time.monotonic()
    streams = [client.post("/api/1/envelope/", ENVELOPE, headers) for _ in range(100)]
    client.read_until_answered(streams)
    elapsed = time.monotonic() - started
    client.close()
    assert [client.answers[s].status for s in streams] == [200] * 100
    # Serialized, 100 delays of 150 ms would take 15 s.
    assert 0.15 <= elapsed < 2.0, elapsed
    assert len(tls_inbox.envelopes) == 100
    assert tls_inbox.counts.faulted == 100


def test_refuse_resets_only_that_stream_over_http2(tls_inbox: Inbox) -> None:
    tls_inbox.set_fault(Fault(refuse=True, remaining=1))
    client = RawH2(tls_inbox)
    headers = auth_header(tls_inbox.public_key)
    refused = client.post("/api/1/envelope/", ENVELOPE, headers)
    client.read_until_answered([refused])
    delivered = client.post("/api/1/envelope/", ENVELOPE, headers)
    client.read_until_answered([delivered])
    client.close()
    assert client.resets == {refused: ErrorCodes.INTERNAL_ERROR}
    assert client.answers[delivered].status == 200
    assert len(tls_inbox.envelopes) == 1
    with _client(tls_inbox, http2=False) as http1:
        tls_inbox.set_fault(Fault(refuse=True, remaining=1))
        with pytest.raises(httpx.RemoteProtocolError):
            _post(http1, tls_inbox, ENVELOPE)
        assert _post(http1, tls_inbox, ENVELOPE).status_code == 200


def test_close_after_sends_goaway_over_http2(tls_inbox: Inbox) -> None:
    tls_inbox.set_fault(Fault(close_after=3))
    client = RawH2(tls_inbox)
    headers = auth_header(tls_inbox.public_key)
    streams = [client.post("/api/1/envelope/", ENVELOPE, headers) for _ in range(5)]
    client.read_until_closed()
    assert streams == [1, 3, 5, 7, 9]
    assert client.goaway is not None
    assert (client.goaway.last_stream_id, client.goaway.error_code) == (5, 0)
    assert {s: client.answers[s].status for s in (1, 3, 5)} == {1: 200, 3: 200, 5: 200}
    assert all(client.answers[s].ended for s in (1, 3, 5))
    assert client.resets == {7: ErrorCodes.REFUSED_STREAM, 9: ErrorCodes.REFUSED_STREAM}
    assert len(tls_inbox.envelopes) == 3
    client.close()
    # A new connection gets its own budget.
    again = RawH2(tls_inbox)
    answered = again.post("/api/1/envelope/", ENVELOPE, headers)
    again.read_until_answered([answered])
    again.close()
    assert again.answers[answered].status == 200
    assert again.goaway is None


def _http1_socket(inbox: Inbox) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", inbox.port), timeout=5)
    if not inbox.tls:
        return raw
    context = inbox.ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize("tls", [True, False], ids=["TLS", "plain"])
def test_close_after_closes_http1_connections(tls: bool) -> None:
    with Inbox(tls=tls) as inbox:
        inbox.set_fault(Fault(close_after=2))
        request = (
            b"POST /api/1/envelope/?sentry_key=%s HTTP/1.1\r\nHost: inbox\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (inbox.public_key.encode(), len(ENVELOPE), ENVELOPE)
        )
        with _http1_socket(inbox) as sock:
            answers = []
            for _ in range(2):
                sock.sendall(request)
                response = http.client.HTTPResponse(sock)
                response.begin()
                response.read()
                answers.append((response.status, response.getheader("Connection")))
            assert answers == [(200, None), (200, "close")]
            assert sock.recv(1) == b""  # closed by the inbox
        assert len(inbox.envelopes) == 2


def test_stop_closes_connections_and_removes_the_ca() -> None:
    inbox = Inbox(tls=True).start()
    directory = Path(str(inbox.ca_file)).parent
    assert directory.is_dir()
    idle_h2 = RawH2(inbox)
    idle_h2.read_settings()
    with _client(inbox, http2=False) as http1, _client(inbox, http2=True) as http2:
        assert _post(http1, inbox, ENVELOPE).status_code == 200
        assert _post(http2, inbox, ENVELOPE).status_code == 200
        started = time.monotonic()
        inbox.stop()
        assert time.monotonic() - started < 2.0
    idle_h2.read_until_closed(timeout=2)
    idle_h2.close()
    assert not directory.exists()
    assert inbox.ca_file is None
    assert [t.name for t in threading.enumerate() if t.name.startswith("inbox")] == []
    assert len(inbox.envelopes) == 2  # what arrived stays readable
