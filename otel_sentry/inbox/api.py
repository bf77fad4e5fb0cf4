"""The inbox's JSON API under ``/api/_inbox/``, for tests in other processes and for the demo.

Routes::

    GET    /api/_inbox/health
    GET    /api/_inbox/envelopes            everything received, JSON-safe
    DELETE /api/_inbox/envelopes            forget everything (and the SQLite archive)
    GET    /api/_inbox/items?type=event     items, optionally waiting: &count=2&timeout=5
    GET    /api/_inbox/otlp/spans           decoded OTLP spans (also /otlp/logs)
    GET    /api/_inbox/stats                counters and validation problems
    GET|POST|DELETE /api/_inbox/fault       read, set (JSON body of Fault fields) or clear
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from .faults import Fault
from .store import ReceivedEnvelope, ReceivedItem
from .wire import Reply, Request, json_reply

if TYPE_CHECKING:
    from .server import Inbox

__all__ = ["PREFIX", "envelope_to_json", "handle", "item_to_json"]

PREFIX = "/api/_inbox"
_MAX_WAIT = 60.0


def item_to_json(item: ReceivedItem, envelope_index: int | None = None) -> dict[str, Any]:
    """An item with its payload as JSON when it is JSON, else UTF-8 text, else base64."""
    if item.json is not None:
        encoding, payload = "json", item.json
    else:
        try:
            encoding, payload = "text", item.payload.decode("utf-8")
        except UnicodeDecodeError:
            encoding, payload = "base64", base64.b64encode(item.payload).decode()
    data: dict[str, Any] = {
        "type": item.type,
        "headers": item.headers,
        "payload_encoding": encoding,
        "payload": payload,
    }
    if envelope_index is not None:
        envelope = item.envelope
        data["envelope"] = {
            "index": envelope_index,
            "headers": envelope.envelope.headers,
            "received_at": envelope.received_at,
            "project_id": envelope.project_id,
        }
    return data


def envelope_to_json(received: ReceivedEnvelope, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "received_at": received.received_at,
        "project_id": received.project_id,
        "path": received.path,
        "http_version": received.http_version,
        "request_headers": received.headers,
        "headers": received.envelope.headers,
        "items": [item_to_json(item) for item in received.items],
    }


def handle(inbox: Inbox, request: Request) -> Reply:
    route = request.path[len(PREFIX) :].rstrip("/")
    method = request.method
    if route == "/health" and method == "GET":
        health = {"status": "ok", "url": inbox.url, "dsn": inbox.dsn(), "ca_file": inbox.ca_file}
        return json_reply(200, health)
    if route == "/envelopes" and method == "GET":
        envelopes = inbox.envelopes
        return json_reply(200, [envelope_to_json(e, i) for i, e in enumerate(envelopes)])
    if route == "/envelopes" and method == "DELETE":
        inbox.clear()
        return json_reply(200, {"cleared": True})
    if route == "/items" and method == "GET":
        return _items(inbox, request)
    if route == "/otlp/spans" and method == "GET":
        return json_reply(200, inbox.otlp_spans())
    if route == "/otlp/logs" and method == "GET":
        return json_reply(200, inbox.otlp_logs())
    if route == "/stats" and method == "GET":
        return json_reply(200, {"counts": inbox.counts.to_json(), "problems": inbox.problems})
    if route == "/fault":
        return _fault(inbox, request)
    return json_reply(404, {"detail": f"no inbox API route {method} {request.path}; see {PREFIX}"})


def _items(inbox: Inbox, request: Request) -> Reply:
    item_type = request.query.get("type") or None
    try:
        count = int(request.query.get("count", "0"))
        timeout = min(float(request.query.get("timeout", "0")), _MAX_WAIT)
    except ValueError:
        return json_reply(400, {"detail": "count must be an integer and timeout a number"})
    if count > 0:
        inbox.wait_for(lambda i: len(i.items(item_type)) >= count, timeout)
    envelopes = inbox.envelopes
    index = {id(e): n for n, e in enumerate(envelopes)}
    items = [
        item_to_json(item, index[id(received)])
        for received in envelopes
        for item in received.items
        if item_type is None or item.type == item_type
    ]
    return json_reply(200, items)


def _fault(inbox: Inbox, request: Request) -> Reply:
    if request.method == "DELETE":
        inbox.clear_fault()
        return json_reply(200, {"fault": None})
    if request.method == "POST":
        try:
            data = json.loads(request.body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("the fault must be a JSON object")
            fault = Fault.from_json(data)
        except ValueError as exc:
            return json_reply(400, {"detail": f"invalid fault: {exc}"})
        inbox.set_fault(fault)
    current = inbox.fault
    return json_reply(200, {"fault": current.to_json() if current else None})
