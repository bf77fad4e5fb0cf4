"""The JSON API, used from a separate HTTP client as another process would."""

from __future__ import annotations

import base64
import threading

import httpx

from otel_sentry.inbox import Inbox, encode_envelope

from .conftest import auth_header

ENVELOPE = encode_envelope(
    {"event_id": "a" * 32, "trace": {"trace_id": "b" * 32, "public_key": "k"}},
    [
        ({"type": "event"}, {"event_id": "a" * 32, "message": "hello"}),
        ({"type": "attachment", "filename": "log.txt"}, b"plain text"),
        ({"type": "attachment", "filename": "core"}, b"\xff\xfe\x00"),
    ],
)


def test_envelopes_items_stats_and_clear(inbox: Inbox, http: httpx.Client) -> None:
    api = f"{inbox.url}/api/_inbox"
    headers = auth_header(inbox.public_key)
    assert (
        http.post(f"{inbox.url}/api/5/envelope/", content=ENVELOPE, headers=headers).status_code
        == 200
    )
    assert (
        http.post(f"{inbox.url}/api/5/envelope/", content=b"x", headers=headers).status_code == 400
    )

    health = http.get(f"{api}/health").json()
    assert health == {"status": "ok", "url": inbox.url, "dsn": inbox.dsn(), "ca_file": None}

    [envelope] = http.get(f"{api}/envelopes").json()
    assert envelope["project_id"] == 5
    assert envelope["headers"]["trace"]["trace_id"] == "b" * 32
    assert envelope["request_headers"]["x-sentry-auth"].startswith("Sentry sentry_version=7")
    assert [(i["type"], i["payload_encoding"], i["payload"]) for i in envelope["items"]] == [
        ("event", "json", {"event_id": "a" * 32, "message": "hello"}),
        ("attachment", "text", "plain text"),
        ("attachment", "base64", base64.b64encode(b"\xff\xfe\x00").decode()),
    ]

    [item] = http.get(f"{api}/items", params={"type": "event"}).json()
    assert item["payload"]["message"] == "hello"
    assert item["envelope"]["index"] == 0 and item["envelope"]["project_id"] == 5

    stats = http.get(f"{api}/stats").json()
    assert stats["problems"] == []
    assert stats["counts"]["items"] == {"event": 1, "attachment": 2}
    assert stats["counts"]["rejected"] == {"parse": 1}
    assert stats["counts"]["requests"] == 2

    assert http.delete(f"{api}/envelopes").json() == {"cleared": True}
    assert http.get(f"{api}/envelopes").json() == []
    assert inbox.envelopes == []


def test_items_can_wait(inbox: Inbox, http: httpx.Client) -> None:
    def send_later() -> None:
        with httpx.Client() as other:
            other.post(f"{inbox.url}/stream", content=ENVELOPE)

    timer = threading.Timer(0.1, send_later)
    timer.start()
    try:
        items = http.get(
            f"{inbox.url}/api/_inbox/items", params={"type": "event", "count": 1, "timeout": 5}
        ).json()
    finally:
        timer.join()
    assert [i["payload"]["message"] for i in items] == ["hello"]


def test_fault_through_the_api(inbox: Inbox, http: httpx.Client) -> None:
    api = f"{inbox.url}/api/_inbox/fault"
    fault = {"status": 429, "rate_limits": "60:error:key", "remaining": 1}
    assert http.post(api, json=fault).json()["fault"]["status"] == 429
    assert http.get(api).json()["fault"]["rate_limits"] == "60:error:key"
    response = http.post(f"{inbox.url}/stream", content=ENVELOPE)
    assert response.status_code == 200  # /stream is Spotlight's: faults cover ingest only
    response = http.post(
        f"{inbox.url}/api/1/envelope/", content=ENVELOPE, headers=auth_header(inbox.public_key)
    )
    assert (response.status_code, response.headers["x-sentry-rate-limits"]) == (429, "60:error:key")
    assert http.get(api).json() == {"fault": None}

    http.post(api, json={"status": 503})
    assert http.delete(api).json() == {"fault": None}
    assert inbox.fault is None

    bad = http.post(api, json={"status": 429, "retry": 1})
    assert bad.status_code == 400
    assert "unknown fault field(s) ['retry']" in bad.json()["detail"]


def test_otlp_spans_and_unknown_routes(inbox: Inbox, http: httpx.Client) -> None:
    span = {
        "traceId": "c" * 32,
        "spanId": "d" * 16,
        "name": "job",
        "kind": 1,
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    assert http.post(f"{inbox.url}/v1/traces", json=body).status_code == 200
    [decoded] = http.get(f"{inbox.url}/api/_inbox/otlp/spans").json()
    assert (decoded["name"], decoded["kind"], decoded["trace_id"]) == ("job", "INTERNAL", "c" * 32)
    assert http.get(f"{inbox.url}/api/_inbox/nope").status_code == 404


def test_the_index_lists_the_real_endpoints_not_itself(inbox: Inbox, http: httpx.Client) -> None:
    index_url = f"{inbox.url}/api/_inbox"
    index = http.get(index_url).json()
    assert index["dsn"] == inbox.dsn()
    api = {(entry["method"], entry["url"]) for entry in index["api"]}
    assert {url for _, url in api} >= {f"{index_url}/{name}" for name in ("health", "stats")}
    assert index_url not in {url.rstrip("/") for _, url in api}
    bodies = {"POST": {"status": 503}}
    for method, url in sorted(api, key=lambda entry: entry[0] != "GET"):  # GETs first
        response = http.request(method, url, json=bodies.get(method))
        assert response.status_code == 200, (method, url, response.text)

    ingest = [entry["url"].replace("<project_id>", "1") for entry in index["ingest"]]
    assert f"{inbox.url}/api/1/envelope/" in ingest and f"{inbox.url}/v1/traces" in ingest
    for url in ingest:
        response = http.post(url, content=ENVELOPE, headers=auth_header(inbox.public_key))
        assert response.status_code != 404, (url, response.text)


def test_unknown_routes_point_at_the_index_and_wrong_methods_get_405(
    inbox: Inbox, http: httpx.Client
) -> None:
    missing = http.get(f"{inbox.url}/api/_inbox/nope")
    assert missing.status_code == 404
    assert "GET /api/_inbox lists them" in missing.json()["detail"]
    wrong = http.post(f"{inbox.url}/api/_inbox/health")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET")
    assert http.delete(f"{inbox.url}/api/_inbox").status_code == 405
