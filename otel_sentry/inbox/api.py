"""The inbox's JSON API under ``/api/_inbox/``, for tests in other processes and for the demo.

``GET /api/_inbox`` is the index: every route below, with its full URL, and the ingest
endpoints senders POST to. The routes are one table (:data:`ROUTES`), which both answers
requests and writes the index, so the index cannot name a route that does not answer::

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .faults import Fault
from .routes import INGEST_ROUTES
from .store import ReceivedEnvelope, ReceivedItem
from .wire import Reply, Request, json_reply

if TYPE_CHECKING:
    from .server import Inbox

__all__ = ["PREFIX", "ROUTES", "envelope_to_json", "handle", "item_to_json"]

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
    if route == "":
        if request.method == "GET":
            return json_reply(200, _index(inbox))
        return _not_allowed(request, ("GET",))
    methods = {method: answer for method, path, _, answer in ROUTES if path == route}
    if not methods:
        detail = f"no inbox API route {request.method} {request.path}; GET {PREFIX} lists them"
        return json_reply(404, {"detail": detail})
    if request.method not in methods:
        return _not_allowed(request, tuple(methods))
    return methods[request.method](inbox, request)


def _index(inbox: Inbox) -> dict[str, Any]:
    """Every route of the API and of the ingest, with its full URL; not the index itself."""
    return {
        "api": [
            {"method": method, "url": f"{inbox.url}{PREFIX}{path}", "what": what}
            for method, path, what, _ in ROUTES
        ],
        "ingest": [
            {"method": "POST", "url": f"{inbox.url}{path}", "what": what}
            for path, what in INGEST_ROUTES
        ],
        "dsn": inbox.dsn(),
    }


def _not_allowed(request: Request, allowed: tuple[str, ...]) -> Reply:
    detail = f"{request.path} answers {', '.join(allowed)}, not {request.method}"
    return json_reply(405, {"detail": detail}, headers={"Allow": ", ".join(allowed)})


def _health(inbox: Inbox, request: Request) -> Reply:
    health = {"status": "ok", "url": inbox.url, "dsn": inbox.dsn(), "ca_file": inbox.ca_file}
    return json_reply(200, health)


def _envelopes(inbox: Inbox, request: Request) -> Reply:
    envelopes = inbox.envelopes
    return json_reply(200, [envelope_to_json(e, i) for i, e in enumerate(envelopes)])


def _clear(inbox: Inbox, request: Request) -> Reply:
    inbox.clear()
    return json_reply(200, {"cleared": True})


def _otlp_spans(inbox: Inbox, request: Request) -> Reply:
    return json_reply(200, inbox.otlp_spans())


def _otlp_logs(inbox: Inbox, request: Request) -> Reply:
    return json_reply(200, inbox.otlp_logs())


def _stats(inbox: Inbox, request: Request) -> Reply:
    return json_reply(200, {"counts": inbox.counts.to_json(), "problems": inbox.problems})


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


_Answer = Callable[["Inbox", Request], Reply]
# (method, path under PREFIX, what it does, answer): the dispatch table and the index, in one.
ROUTES: tuple[tuple[str, str, str, _Answer], ...] = (
    ("GET", "/health", "liveness, with the inbox's URL, DSN and CA file", _health),
    ("GET", "/envelopes", "everything received, JSON-safe", _envelopes),
    ("DELETE", "/envelopes", "forget everything (and the SQLite archive)", _clear),
    ("GET", "/items", "items: ?type=event, and to wait for them &count=2&timeout=5", _items),
    ("GET", "/otlp/spans", "decoded OTLP spans", _otlp_spans),
    ("GET", "/otlp/logs", "decoded OTLP log records", _otlp_logs),
    ("GET", "/stats", "counters and validation problems", _stats),
    ("GET", "/fault", "the fault in force, if any", _fault),
    ("POST", "/fault", "set a fault (JSON body of Fault fields)", _fault),
    ("DELETE", "/fault", "clear the fault", _fault),
)
