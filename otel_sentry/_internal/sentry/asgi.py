"""Unhandled exceptions in Starlette and FastAPI apps -> Sentry issues, linked to the request span.

sentry_sdk's Starlette and FastAPI integrations capture these, but with tracing left to
OpenTelemetry they still cost about 400 us per request (they start their own unsampled
transaction, fork scopes and wrap every endpoint; measured in BENCHMARKS.md), and they capture
*outside* the OTel server span. We turn those integrations off and insert one small ASGI
middleware instead, just inside Starlette's ``ServerErrorMiddleware`` (where the OTel FastAPI
instrumentation expects that middleware to stay outermost). Per request it forks sentry_sdk's
isolation scope, so users, tags and breadcrumbs stay with their request; on an exception it
captures it, with the request's method, URL and safe headers, and re-raises. The issue is named
after the route here, then after the request's transaction when it is linked to one (client.py),
so Sentry pairs the two. In a plain Starlette app the instrumentation's middleware sits inside
``ServerErrorMiddleware``, so the capture happens just after the server span ended; events.py
links it to that span all the same. When the app's lifespan ends it flushes what is pending,
before the server may exit.

    install()   # once, from setup; apps built afterwards get the middleware
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import sentry_sdk
from opentelemetry import trace
from sentry_sdk.utils import event_from_exception

__all__ = ["CaptureErrors", "install"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

# Headers that say nothing about who the user is; the rest only with send_default_pii.
_SAFE_HEADERS = frozenset(
    {"host", "user-agent", "content-type", "content-length", "accept", "accept-encoding"}
)
_NEVER_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


def _request_info(scope: Scope, include_pii: bool) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for raw_key, raw_value in scope.get("headers") or ():
        key = raw_key.decode("latin-1").lower()
        if key in _NEVER_HEADERS or (not include_pii and key not in _SAFE_HEADERS):
            continue
        headers[key] = raw_value.decode("latin-1")
    host = headers.get("host")
    if host is None and scope.get("server"):
        server_host, port = scope["server"]
        host = f"{server_host}:{port}" if port not in (80, 443, None) else str(server_host)
    path = scope.get("root_path", "") + scope.get("path", "")
    info: dict[str, Any] = {
        "method": scope.get("method"),
        # No query string: tokens hide there; the privacy work decides what of it may go.
        "url": f"{scope.get('scheme', 'http')}://{host or 'unknown'}{path}",
        "headers": headers,
    }
    if include_pii and scope.get("client"):
        info["env"] = {"REMOTE_ADDR": scope["client"][0]}
    return info


def _route_name(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return f"{scope.get('method', '')} {path}".strip() if path else None


class CaptureErrors:
    """The middleware: one isolation scope per request, one issue per unhandled exception."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "lifespan":
            await self.app(scope, receive, _flush_before_shutdown_completes(send))
            return
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with sentry_sdk.isolation_scope():
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                _capture(exc, scope)
                raise


def _flush_before_shutdown_completes(send: Any) -> Any:
    """Flush when the app's lifespan ends, before the server is told it may exit.

    uvicorn's gunicorn worker resets SIGTERM to the default action and re-raises it after its
    graceful shutdown, so the process ends without atexit and without our SIGTERM hook (when
    ``init()`` ran before the fork, the worker never saw that hook at all). The lifespan
    shutdown is the last moment every ASGI server gives the app.
    """

    async def send_then_flush(message: MutableMapping[str, Any]) -> None:
        if message.get("type") == "lifespan.shutdown.complete":
            await asyncio.get_running_loop().run_in_executor(None, _flush)
        await send(message)

    return send_then_flush


def _flush(timeout: float = 5.0) -> None:
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(int(timeout * 1000))
    client = sentry_sdk.get_client()
    if client.is_active():
        client.flush(timeout=timeout)


def _capture(exc: BaseException, scope: Scope) -> None:
    client = sentry_sdk.get_client()
    if not client.is_active():
        return
    event, hint = event_from_exception(
        exc, client_options=client.options, mechanism={"type": "asgi", "handled": False}
    )
    event["request"] = _request_info(scope, bool(client.options.get("send_default_pii")))
    name = _route_name(scope)
    if name:
        event["transaction"] = name
        event["transaction_info"] = {"source": "route"}
    sentry_sdk.capture_event(event, hint=hint)


def _wrap(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def build_middleware_stack(self: Any) -> Any:
        stack = original(self)
        inner = getattr(stack, "app", None)
        # Keep ServerErrorMiddleware outermost (the OTel instrumentation relies on it) and sit
        # directly inside it, so errors that its handlers turn into 500s are still seen.
        if inner is not None and not isinstance(inner, CaptureErrors):
            stack.app = CaptureErrors(inner)
        return stack

    build_middleware_stack.__wrapped__ = original  # type: ignore[attr-defined]
    build_middleware_stack._otel_sentry = True  # type: ignore[attr-defined]
    return build_middleware_stack


def install() -> list[str]:
    """Patch the frameworks that are importable; returns which. Idempotent."""
    patched: list[str] = []
    targets: list[tuple[str, str]] = [
        ("starlette.applications", "Starlette"),
        ("fastapi.applications", "FastAPI"),
    ]
    for module_name, class_name in targets:
        try:
            module = __import__(module_name, fromlist=[class_name])
        except ImportError:
            continue
        # The Starlette instrumentation swaps the module's class for a subclass of its own:
        # patch the class that defines the method, whichever of the two is exported now.
        owner = next(
            (c for c in getattr(module, class_name).__mro__ if "build_middleware_stack" in vars(c)),
            None,
        )
        if owner is None:
            continue
        current = vars(owner)["build_middleware_stack"]
        if not getattr(current, "_otel_sentry", False):
            owner.build_middleware_stack = _wrap(current)
        patched.append(class_name)
    return patched
