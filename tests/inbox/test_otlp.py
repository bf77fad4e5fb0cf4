"""OTLP/HTTP into the inbox: the real OTLPSpanExporter (protobuf) and hand-written OTLP/JSON."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_sentry.inbox import Inbox, render_otlp_spans

TRACE_ID = "5b8efff798038103d269b633813fc60c"


@pytest.mark.parametrize(
    ("path", "with_auth", "compression", "project_id"),
    [
        ("/v1/traces", False, Compression.NoCompression, None),
        ("/api/1/integration/otlp/v1/traces", True, Compression.Gzip, 1),
    ],
)
def test_real_exporter_on_both_paths(
    inbox: Inbox, path: str, with_auth: bool, compression: Compression, project_id: int | None
) -> None:
    headers = {"x-sentry-auth": f"sentry sentry_key={inbox.public_key}"} if with_auth else None
    exporter = OTLPSpanExporter(
        endpoint=f"{inbox.url}{path}", headers=headers, compression=compression, timeout=5
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.inbox")
    with tracer.start_as_current_span(
        "GET /orders/{id}",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": "/orders/{id}", "retries": 2},
    ) as root:
        root.set_attribute("enduser.id", "u-1")
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.system.name", "postgresql")
            child.set_attribute("tags", ["a", "b"])
            child.add_event("row", {"n": 1})
            child.set_status(Status(StatusCode.ERROR, "timeout"))
    provider.shutdown()

    spans = {s["name"]: s for s in inbox.wait_for_otlp_spans(2)}
    server, db = spans["GET /orders/{id}"], spans["SELECT orders"]
    assert server["kind"] == "SERVER" and db["kind"] == "CLIENT"
    assert server["trace_id"] == db["trace_id"] == format(root.get_span_context().trace_id, "032x")
    assert db["parent_span_id"] == server["span_id"]
    assert server["parent_span_id"] is None
    assert server["attributes"] == {
        "http.request.method": "GET",
        "http.route": "/orders/{id}",
        "retries": 2,
        "enduser.id": "u-1",
    }
    assert db["attributes"]["tags"] == ["a", "b"]
    assert (db["status_code"], db["status_message"]) == ("ERROR", "timeout")
    assert [(e["name"], e["attributes"]) for e in db["events"]] == [("row", {"n": 1})]
    assert db["resource"]["service.name"] == "checkout"
    assert db["scope"] == "tests.inbox"
    assert db["end_time_unix_nano"] >= db["start_time_unix_nano"] > 0
    assert (db["path"], db["project_id"]) == (path, project_id)
    assert inbox.counts.otlp_spans == 2

    tree = render_otlp_spans(inbox.otlp_spans()).splitlines()
    assert tree[0].startswith(f"-- OTLP trace {server['trace_id']} (checkout)")
    assert tree[1].startswith("  GET /orders/{id}  SERVER")
    assert tree[2].startswith("    SELECT orders  CLIENT") and "ERROR timeout" in tree[2]


def test_sentry_otlp_path_needs_the_key(inbox: Inbox, http: httpx.Client) -> None:
    url = f"{inbox.url}/api/1/integration/otlp/v1/traces"
    response = http.post(url, content=b"", headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 403
    response = http.post(
        url,
        content=b"",
        headers={"Content-Type": "application/x-protobuf", "X-Sentry-Auth": "Sentry sentry_key=x"},
    )
    assert response.status_code == 403
    assert inbox.counts.rejected == {"auth": 2}


OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "manual", "version": "1.0"},
                    "spans": [
                        {
                            "traceId": TRACE_ID.upper(),
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "",
                            "name": "POST /pay",
                            "kind": 2,
                            "startTimeUnixNano": "1700000000000000000",
                            "endTimeUnixNano": "1700000000250000000",
                            "attributes": [
                                {"key": "http.status_code", "value": {"intValue": "502"}},
                                {"key": "ok", "value": {"boolValue": False}},
                                {"key": "ratio", "value": {"doubleValue": 0.5}},
                                {
                                    "key": "nested",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [{"key": "k", "value": {"stringValue": "v"}}]
                                        }
                                    },
                                },
                            ],
                            "status": {"code": 2, "message": "bad gateway"},
                        }
                    ],
                }
            ],
        }
    ]
}


def test_otlp_json(inbox: Inbox, http: httpx.Client) -> None:
    response = http.post(f"{inbox.url}/v1/traces", json=OTLP_JSON)
    assert response.status_code == 200
    assert response.json() == {}
    [span] = inbox.otlp_spans()
    assert span["trace_id"] == TRACE_ID
    assert span["parent_span_id"] is None
    assert span["kind"] == "SERVER"
    assert span["end_time_unix_nano"] - span["start_time_unix_nano"] == 250_000_000
    assert span["attributes"] == {
        "http.status_code": 502,
        "ok": False,
        "ratio": 0.5,
        "nested": {"k": "v"},
    }
    assert (span["status_code"], span["status_message"]) == ("ERROR", "bad gateway")
    assert (span["scope"], span["scope_version"]) == ("manual", "1.0")


@pytest.mark.parametrize(
    ("content_type", "body", "detail"),
    [
        ("application/json", b"{nope", "OTLP/JSON body is not valid JSON"),
        ("application/json", b'{"resourceSpans": 3}', "does not match the OTLP schema"),
        (
            "application/json",
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
            "not hex",
        ),
        ("application/x-protobuf", b"\xff\xff\xff", "not valid protobuf"),
    ],
)
def test_bad_otlp_bodies_are_400(
    inbox: Inbox, http: httpx.Client, content_type: str, body: bytes, detail: str
) -> None:
    response = http.post(
        f"{inbox.url}/v1/traces", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert inbox.counts.rejected == {"parse": 1}


def test_otlp_logs_protobuf_and_json(inbox: Inbox, http: httpx.Client) -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.severity_text = "ERROR"
    record.body.string_value = "payment failed"
    record.trace_id = bytes.fromhex(TRACE_ID)
    response = http.post(
        f"{inbox.url}/v1/logs",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    json_body = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {"logRecords": [{"severityText": "INFO", "body": {"stringValue": "ok"}}]}
                ]
            }
        ]
    }
    assert http.post(f"{inbox.url}/v1/logs", json=json_body).status_code == 200
    logs = inbox.otlp_logs()
    assert [(r["severity_text"], r["body"], r["trace_id"]) for r in logs] == [
        ("ERROR", "payment failed", TRACE_ID),
        ("INFO", "ok", None),
    ]
