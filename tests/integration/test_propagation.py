"""Both directions through a real FastAPI service: headers in from a caller, out through httpx.

The caller is urllib (not instrumented) sending what a Next.js front end sends; the next service
is a plain HTTP server that records the headers it received.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration

TRACE = "5b8efff798038103d269b633813fc60c"
PARENT = "eee19b7ec3c1b174"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def downstream() -> Iterator[str]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def service(inbox: Inbox, downstream: str, fresh: None) -> Iterator[UvicornThread]:
    otel_sentry.init(
        dsn=inbox.dsn(), release="api@2", environment="prod", instrument=("fastapi", "httpx")
    )
    import httpx
    from fastapi import FastAPI

    from otel_sentry._internal.instrument.web import allow_trace_headers

    app = FastAPI()
    allow_trace_headers(app, origins=["http://front.test"])

    @app.get("/checkout")
    def checkout() -> dict[str, int]:
        return {"next": httpx.get(f"{downstream}/price", timeout=5).status_code}

    with UvicornThread(app) as server:
        yield server


def _call(server: UvicornThread, headers: dict[str, str], method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/checkout", headers=headers, method=method
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers)


def _front_end_headers(flag: str) -> dict[str, str]:
    return {
        "sentry-trace": f"{TRACE}-{PARENT}-{flag}",
        "baggage": (
            f"sentry-trace_id={TRACE},sentry-public_key=frontkey,sentry-sample_rate=0.5,"
            f"sentry-sample_rand=0.25,sentry-sampled={'true' if flag == '1' else 'false'},"
            "sentry-release=web%403,sentry-environment=prod,othervendor=abc"
        ),
    }


def test_a_sampled_front_end_trace_continues_and_travels_on(
    service: UvicornThread, inbox: Inbox
) -> None:
    status, _ = _call(service, _front_end_headers("1"))
    assert status == 200
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    txn = item.json
    assert txn["contexts"]["trace"]["trace_id"] == TRACE
    assert txn["contexts"]["trace"]["parent_span_id"] == PARENT
    dsc = item.envelope.envelope.headers["trace"]
    assert dsc["public_key"] == "frontkey" and dsc["release"] == "web@3"  # the head's, frozen
    assert dsc["sample_rate"] == "0.5" and dsc["sample_rand"] == "0.25"
    [sent] = _Recorder.seen
    [client_span] = [s for s in txn["spans"] if s["op"] == "http.client"]
    assert sent["sentry-trace"] == f"{TRACE}-{client_span['span_id']}-1"
    assert sent["traceparent"].split("-")[1:3] == [TRACE, client_span["span_id"]]
    assert "sentry-release=web%403" in sent["baggage"] and "othervendor=abc" in sent["baggage"]
    assert inbox.problems == []


def test_an_unsampled_front_end_trace_sends_nothing_and_the_zero_travels_on(
    service: UvicornThread, inbox: Inbox
) -> None:
    status, _ = _call(service, _front_end_headers("0"))
    assert status == 200
    otel_sentry.flush(5)
    assert inbox.transactions() == []
    [sent] = _Recorder.seen
    assert sent["sentry-trace"].startswith(TRACE) and sent["sentry-trace"].endswith("-0")
    assert "sentry-sampled=false" in sent["baggage"]


def test_w3c_only_callers_are_continued(service: UvicornThread, inbox: Inbox) -> None:
    status, _ = _call(service, {"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert status == 200
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    assert item.json["contexts"]["trace"]["trace_id"] == TRACE
    assert (
        item.envelope.envelope.headers["trace"]["public_key"] == inbox.public_key
    )  # we head the DSC


def test_cors_preflight_allows_the_trace_headers(service: UvicornThread) -> None:
    status, headers = _call(
        service,
        {
            "Origin": "http://front.test",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "sentry-trace,baggage,traceparent",
        },
        method="OPTIONS",
    )
    assert status == 200
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"sentry-trace", "baggage", "traceparent"} <= allowed
    assert json.dumps(headers)  # headers are plain strings
