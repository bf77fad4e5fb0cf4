"""OTLP/HTTP request bodies (protobuf or JSON) decoded into plain span and log-record dicts.

Both encodings go through the protobuf messages of ``opentelemetry-proto``, so a JSON body is
held to the same schema as a binary one. The result is what tests assert on::

    [span] = decode_traces(body, "application/x-protobuf")
    span["name"], span["attributes"]["http.route"], span["parent_span_id"]
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = [
    "OtlpError",
    "OtlpUnavailableError",
    "decode_logs",
    "decode_traces",
    "is_json",
    "response_body",
]

_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")
# Fields that OTLP/JSON writes as hex while proto3's canonical JSON expects base64.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class OtlpError(ValueError):
    """The body is not a valid OTLP export request."""


class OtlpUnavailableError(RuntimeError):
    """opentelemetry-proto, which decodes OTLP, is not installed (it is in the inbox extra)."""

    def __init__(self) -> None:
        super().__init__(
            "decoding OTLP needs opentelemetry-proto, which is not installed: "
            "pip install 'otel-sentry[inbox]'"
        )


def is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


def response_body(json_response: bool) -> tuple[bytes, str]:
    """An empty export response, as a collector answers a fully accepted request."""
    if json_response:
        return b"{}", "application/json"
    # An empty ExportTraceServiceResponse / ExportLogsServiceResponse serializes to no bytes.
    return b"", "application/x-protobuf"


def decode_traces(body: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """Decode an ExportTraceServiceRequest into one dict per span."""
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:
        raise OtlpUnavailableError from None

    request = trace_service_pb2.ExportTraceServiceRequest()
    _load(request, body, content_type)
    spans: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "kind": _name(_KINDS, span.kind),
                        "start_time_unix_nano": span.start_time_unix_nano,
                        "end_time_unix_nano": span.end_time_unix_nano,
                        "attributes": _attributes(span.attributes),
                        "status_code": _name(_STATUS, span.status.code),
                        "status_message": span.status.message or None,
                        "events": [
                            {
                                "name": event.name,
                                "time_unix_nano": event.time_unix_nano,
                                "attributes": _attributes(event.attributes),
                            }
                            for event in span.events
                        ],
                        "links": [
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": _attributes(link.attributes),
                            }
                            for link in span.links
                        ],
                        "resource": resource,
                        "scope": scope.name,
                        "scope_version": scope.version or None,
                    }
                )
    return spans


def decode_logs(body: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """Decode an ExportLogsServiceRequest into one dict per log record."""
    try:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    except ImportError:
        raise OtlpUnavailableError from None

    request = logs_service_pb2.ExportLogsServiceRequest()
    _load(request, body, content_type)
    records: list[dict[str, Any]] = []
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                records.append(
                    {
                        "time_unix_nano": record.time_unix_nano,
                        "observed_time_unix_nano": record.observed_time_unix_nano,
                        "severity_number": record.severity_number,
                        "severity_text": record.severity_text,
                        "body": _value(record.body) if record.HasField("body") else None,
                        "attributes": _attributes(record.attributes),
                        "trace_id": record.trace_id.hex() or None,
                        "span_id": record.span_id.hex() or None,
                        "resource": resource,
                        "scope": scope_logs.scope.name,
                    }
                )
    return records


def _load(message: Any, body: bytes, content_type: str | None) -> None:
    # protobuf ships no type stubs; the ignore stays harmless where types-protobuf is installed.
    from google.protobuf import json_format  # type: ignore[import-untyped,unused-ignore]
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped,unused-ignore]

    if is_json(content_type):
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            raise OtlpError(f"OTLP/JSON body is not valid JSON: {exc}") from None
        try:
            json_format.ParseDict(_hex_ids_to_base64(data), message, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise OtlpError(f"OTLP/JSON body does not match the OTLP schema: {exc}") from None
        return
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(
            f"OTLP body is not valid protobuf ({exc}); send Content-Type application/json "
            "for OTLP/JSON"
        ) from None


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, list):
        return [_hex_ids_to_base64(child) for child in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ID_FIELDS and isinstance(value, str):
            try:
                converted[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise OtlpError(f"OTLP/JSON {key} {value!r} is not hex") from None
        else:
            converted[key] = _hex_ids_to_base64(value)
    return converted


def _name(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else str(value)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(any_value.kvlist_value.values)
    if kind == "bytes_value":
        # Base64, as OTLP/JSON writes bytes, keeps every span dict JSON-safe.
        return base64.b64encode(any_value.bytes_value).decode()
    return getattr(any_value, kind)
