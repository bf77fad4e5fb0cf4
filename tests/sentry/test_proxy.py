"""Behind an HTTP proxy (HTTP_PROXY), envelopes go through it, many at a time.

The proxy is a real one on 127.0.0.1: it takes absolute-form requests, as urllib3 sends them to a
proxy for an ``http://`` DSN, forwards them to the inbox and counts what passed.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.sentry.transport import EnvelopeTransport
from otel_sentry._internal.sentry.wire.threaded import ThreadedWire
from otel_sentry.inbox import Fault, Inbox

pytestmark = [pytest.mark.usefixtures("fresh"), pytest.mark.integration]


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        upstream = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        upstream.request("POST", url.path + (f"?{url.query}" if url.query else ""), body, headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        # Counted before the answer is relayed: once the client has it, a test may look.
        with self.server.lock:
            self.server.forwarded += 1
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.lock = threading.Lock()
        self.forwarded = 0


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    server = _Proxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def test_envelopes_go_through_the_proxy_several_at_a_time(inbox: Inbox, proxy: _Proxy) -> None:
    inbox.set_fault(Fault(delay=0.1))
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    transport = sentry_sdk.get_client().transport
    assert isinstance(transport, EnvelopeTransport)
    assert isinstance(transport.wire, ThreadedWire)  # urllib3 knows the proxy
    tracer = trace.get_tracer("tests")
    for i in range(60):
        with tracer.start_as_current_span(f"job-{i}"):
            pass
    assert otel_sentry.flush(30)
    names = sorted(t["transaction"] for t in inbox.transactions())
    assert names == sorted(f"job-{i}" for i in range(60))
    assert proxy.forwarded == inbox.counts.requests == 60
