"""Which endpoint answers a request, and the headers every answer carries, for every protocol.

The plain HTTP/1.1 server, and the TLS server's HTTP/1.1 and HTTP/2 connections, differ in how
bytes become a :class:`~.wire.Request`; from there on they share this one path, so an envelope
is authenticated, faulted, parsed and recorded the same whichever protocol brought it::

    router = Router(ingest, api)
    reply = router.answer(request)
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from .ingest import Ingest
from .wire import Reply, Request, json_reply

__all__ = [
    "CORS",
    "IDLE_TIMEOUT",
    "INGEST_ROUTES",
    "MAX_BODY",
    "AsyncAnswer",
    "Router",
    "reply_headers",
]

MAX_BODY = 100 * 1024 * 1024
# Idle keep-alive connections are dropped after this long; senders reconnect transparently.
IDLE_TIMEOUT = 60.0
_ENVELOPE = re.compile(r"^/api/(\d+)/envelope/?$")
_SENTRY_OTLP = re.compile(r"^/api/(\d+)/integration/otlp/v1/(traces|logs)/?$")
_PLAIN_OTLP = re.compile(r"^/v1/(traces|logs)/?$")
# What senders POST to, as the API's index (GET /api/_inbox) and a 404 name them.
INGEST_ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/<project_id>/envelope/", "Sentry envelopes (X-Sentry-Auth or ?sentry_key=)"),
    ("/stream", "Spotlight's endpoint: envelopes without auth, never faulted"),
    ("/api/<project_id>/integration/otlp/v1/traces", "Sentry's OTLP endpoint (x-sentry-auth)"),
    ("/api/<project_id>/integration/otlp/v1/logs", "Sentry's OTLP endpoint (x-sentry-auth)"),
    ("/v1/traces", "plain OTLP/HTTP, as a Collector receives it"),
    ("/v1/logs", "plain OTLP/HTTP, as a Collector receives it"),
)
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    # Browser SDKs read these to honour rate limits; CORS hides them unless exposed.
    "Access-Control-Expose-Headers": "X-Sentry-Rate-Limits, Retry-After",
}


# How the event-loop servers reach Router.answer: on a worker thread, awaited.
AsyncAnswer = Callable[[Request], Awaitable[Reply]]


@dataclass(frozen=True)
class Router:
    """The inbox's endpoints: ingest routes go to :class:`Ingest`, ``/api/_inbox`` to ``api``.

    :meth:`answer` is synchronous and may block (a ``delay`` fault sleeps, the JSON API can
    wait for items): each server calls it from a thread of its own, never from an event loop.
    """

    ingest: Ingest
    api: Callable[[Request], Reply]

    def answer(self, request: Request) -> Reply:
        """The reply to ``request``; a bug in the inbox becomes a 500, never a dropped socket."""
        if request.method == "OPTIONS":
            return Reply(status=204, content_type="")
        try:
            return self.route(request)
        except Exception as exc:
            # A bug in the inbox must not look like a network error to the sender under test.
            traceback.print_exc()
            return json_reply(500, {"detail": f"inbox internal error: {exc!r}"})

    def route(self, request: Request) -> Reply:
        path = request.path
        if path.startswith("/api/_inbox"):
            return self.api(request)
        if request.method != "POST":
            return json_reply(404, {"detail": f"no route for {request.method} {path}"})
        if match := _ENVELOPE.match(path):
            return self.ingest.envelope(request, int(match.group(1)))
        if path.rstrip("/") == "/stream":
            return self.ingest.envelope(request, None, spotlight=True)
        if match := _SENTRY_OTLP.match(path):
            return self.ingest.otlp(request, _signal(match[2]), int(match[1]), authenticate=True)
        if match := _PLAIN_OTLP.match(path):
            return self.ingest.otlp(request, _signal(match[1]), None, authenticate=False)
        paths = ", ".join(route for route, _ in INGEST_ROUTES)
        return json_reply(404, {"detail": f"no route for POST {path}; ingest at {paths}"})


def reply_headers(reply: Reply) -> list[tuple[str, str]]:
    """The headers of an answer, Content-Length included, in the order they are sent."""
    headers = [("Content-Type", reply.content_type)] if reply.content_type else []
    headers.append(("Content-Length", str(len(reply.body))))
    headers += list({**CORS, **reply.headers}.items())
    return headers


def _signal(name: str) -> Literal["traces", "logs"]:
    return "traces" if name == "traces" else "logs"
