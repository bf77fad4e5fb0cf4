"""The request a server span is being started for, as the sampler's code may read it.

sentry_sdk hands a ``traces_sampler`` the request object of the transaction it samples: the ASGI
scope (``sampling_context["asgi_scope"]``) or the WSGI environ (``["wsgi_environ"]``). An
OpenTelemetry sampler gets a span name, a kind and attributes only. The contrib server
instrumentations (ASGI, WSGI, Django, Flask, Falcon, Pyramid) all start their server span
through one function, ``opentelemetry.instrumentation.utils._start_internal_or_server_span``,
which receives the scope or environ as the propagation carrier; wrapped in each module that
imported it, it shows that carrier, through a context variable, to the sampler that runs inside
``start_span``, and to nothing else: the variable is reset before the request's own code runs.

Wrapped only once asked (``carry_request_objects()``, when a sampler wants the request): a
process without one pays nothing. Where no carrier was shown (another instrumentation, or a
module that no longer has the function), ``wsgi_environ_from_attributes`` and
``asgi_scope_from_attributes`` rebuild one from the span's semantic-convention attributes, without
credentials (no ``Authorization`` or ``Cookie`` header is ever rebuilt).

    carry_request_objects()          # at setup, then after each instrumentor is enabled
    request_carrier()                # inside Sampler.should_sample: the scope/environ, or None
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import ModuleType
from typing import Any

__all__ = [
    "asgi_scope_from_attributes",
    "carry_request_objects",
    "patch_loaded",
    "request_carrier",
    "request_objects_from_attributes",
    "wsgi_environ_from_attributes",
]

_log = logging.getLogger("otel_sentry")

_CARRIER: ContextVar[Any] = ContextVar("otel_sentry_request_carrier", default=None)

_FUNCTION = "_start_internal_or_server_span"
# Modules that start a server span through _FUNCTION, imported by name into their namespace.
# The first two are imported when a sampler asks, so an app that wraps itself in their middleware
# after init() is covered (every web instrumentation imports them anyway); the others are wrapped
# once their framework's instrumentation is loaded (registry.enable calls patch_loaded()).
_EAGER = (
    "opentelemetry.instrumentation.asgi",
    "opentelemetry.instrumentation.wsgi",
    "fastapi.telemetry._asgi",
)
_MODULES = (
    *_EAGER,
    "opentelemetry.instrumentation.django.middleware.otel_middleware",
    "opentelemetry.instrumentation.flask",
    "opentelemetry.instrumentation.falcon",
    "opentelemetry.instrumentation.pyramid.callbacks",
)

_wanted = False


def request_carrier() -> Any:
    """The ASGI scope or WSGI environ of the server span being started here, else None."""
    return _CARRIER.get()


def carry_request_objects() -> None:
    """From now on, show each server span's scope or environ to the sampler (idempotent)."""
    global _wanted
    _wanted = True
    for name in _EAGER:
        try:
            importlib.import_module(name)
        except Exception:  # not installed, or broken: its requests get rebuilt carriers
            continue
    patch_loaded()


def patch_loaded() -> None:
    """Wrap the span start of every instrumentation module loaded so far, if asked to."""
    if not _wanted:
        return
    for name in _MODULES:
        module = sys.modules.get(name)
        if module is not None:
            _patch(module)
    native = sys.modules.get(_FASTAPI_NATIVE)
    if native is not None:
        _patch_fastapi_native(native)


# FastAPI's own telemetry (instrument/fastapi_native.py) starts its server span in
# NativeTelemetry.__call__, with the scope in hand, then runs the app from there.
_FASTAPI_NATIVE = "fastapi.telemetry._asgi"


def _patch_fastapi_native(module: ModuleType) -> None:
    cls = getattr(module, "NativeTelemetry", None)
    call = vars(cls).get("__call__") if isinstance(cls, type) else None
    if cls is None or call is None or getattr(call, "_shows_carrier", False):
        return

    async def call_showing_scope(self: Any, *, app: Any, scope: Any, **kwargs: Any) -> None:
        async def app_without_carrier(*args: Any) -> None:
            _CARRIER.set(None)  # the span has started: the request's own code sees nothing
            await app(*args)

        token = _CARRIER.set(scope)
        try:
            await call(self, app=app_without_carrier, scope=scope, **kwargs)
        finally:
            _CARRIER.reset(token)

    call_showing_scope._shows_carrier = True  # type: ignore[attr-defined]
    call_showing_scope.__wrapped__ = call  # type: ignore[attr-defined]
    cls.__call__ = call_showing_scope


def _patch(module: ModuleType) -> None:
    start = getattr(module, _FUNCTION, None)
    if start is None:
        # A newer instrumentation starts its span another way: samplers get a rebuilt carrier.
        _log.debug("otel-sentry: %s has no %s; rebuilding its requests", module.__name__, _FUNCTION)
        return
    if getattr(start, "_shows_carrier", False):
        return
    setattr(module, _FUNCTION, _showing_carrier(start))


def _showing_carrier(start: Callable[..., Any]) -> Callable[..., Any]:
    def start_span_showing_carrier(*args: Any, **kwargs: Any) -> Any:
        # Every caller passes the carrier by keyword; the fourth positional otherwise.
        carrier = kwargs["context_carrier"] if "context_carrier" in kwargs else args[3]
        token = _CARRIER.set(carrier)
        try:
            return start(*args, **kwargs)
        finally:
            _CARRIER.reset(token)

    start_span_showing_carrier._shows_carrier = True  # type: ignore[attr-defined]
    start_span_showing_carrier.__wrapped__ = start  # type: ignore[attr-defined]
    return start_span_showing_carrier


# Request headers never rebuilt: credentials, whatever an instrumentation was told to capture.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
_SECRET_PARTS = ("token", "secret", "password", "auth", "session", "cookie", "api-key", "apikey")
_HEADER_PREFIX = "http.request.header."


def request_objects_from_attributes(
    attributes: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both ``(wsgi_environ, asgi_scope)``, reading the attributes once."""
    request = _Request(attributes)
    return _environ(request), _scope(request)


def wsgi_environ_from_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A PEP 3333 environ with what the server span's attributes say about the request."""
    return _environ(_Request(attributes))


def asgi_scope_from_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """An ASGI HTTP connection scope with what the server span's attributes say."""
    return _scope(_Request(attributes))


def _environ(request: _Request) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query,
        "SERVER_NAME": request.server_name,
        "SERVER_PORT": str(request.port),
        "SERVER_PROTOCOL": f"HTTP/{request.flavor}",
        "wsgi.url_scheme": request.scheme,
    }
    if request.client_address:
        environ["REMOTE_ADDR"] = request.client_address
    for name, value in request.headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            key = key[5:]  # PEP 3333: these two come without the HTTP_ prefix
        environ[key] = value
    return environ


def _scope(request: _Request) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "websocket" if request.scheme in ("ws", "wss") else "http",
        "asgi": {"version": "3.0"},
        "http_version": request.flavor,
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode("utf-8"),
        "query_string": request.query.encode("latin-1", "replace"),
        "root_path": "",
        "headers": [
            (name.encode("latin-1", "replace"), value.encode("latin-1", "replace"))
            for name, value in request.headers
        ],
        "server": (request.server_name, request.port),
    }
    if request.client_address:
        scope["client"] = (request.client_address, request.client_port or 0)
    return scope


class _Request:
    """The request as the old and the stable HTTP semantic conventions record it."""

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        url = _text(attrs, "url.full", "http.url")
        url_path, url_query, url_host = _split_url(url)
        target = _text(attrs, "http.target")
        target_path, _, target_query = target.partition("?")
        method = _text(attrs, "http.request.method", "http.method")
        if method == "_OTHER":
            method = _text(attrs, "http.request.method_original") or method
        self.method = method or "GET"
        self.path = _text(attrs, "url.path") or target_path or url_path or "/"
        query = attrs.get("url.query")
        self.query = query if isinstance(query, str) else (target_query or url_query)
        self.scheme = _text(attrs, "url.scheme", "http.scheme") or "http"
        host_header = _text(attrs, "http.host")
        host, _, host_port = host_header.partition(":")
        server_name = _text(attrs, "http.server_name").partition(":")[0]
        self.server_name = (
            _text(attrs, "server.address", "net.host.name") or host or server_name or url_host
        )
        port = attrs.get("server.port", attrs.get("net.host.port"))
        if not isinstance(port, int) and host_port.isdigit():
            port = int(host_port)
        self.port = port if isinstance(port, int) else (443 if self.scheme == "https" else 80)
        self.flavor = _text(attrs, "network.protocol.version", "http.flavor") or "1.1"
        self.client_address = _text(attrs, "client.address", "net.peer.ip", "http.client_ip")
        client_port = attrs.get("client.port", attrs.get("net.peer.port"))
        self.client_port = client_port if isinstance(client_port, int) else None
        headers: dict[str, str] = {}
        host_value = host_header or self.server_name
        if host_value:
            headers["host"] = host_value
        agent = _text(attrs, "user_agent.original", "http.user_agent")
        if agent:
            headers["user-agent"] = agent
        for key, value in attrs.items():
            # Headers an instrumentation was told to capture (a tuple of values per name).
            if key.startswith(_HEADER_PREFIX):
                name = key[len(_HEADER_PREFIX) :].replace("_", "-").lower()
                if not _secret(name):
                    values = value if isinstance(value, (tuple, list)) else (value,)
                    headers[name] = ",".join(str(v) for v in values)
        self.headers = list(headers.items())


def _secret(name: str) -> bool:
    return name in _SECRET_HEADERS or any(part in name for part in _SECRET_PARTS)


def _text(attrs: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _split_url(url: str) -> tuple[str, str, str]:
    """(path, query, host) of an absolute URL, without any ``user:password@``."""
    if not url:
        return "", "", ""
    url = url.partition("#")[0]
    rest, _, query = url.partition("?")
    scheme = rest.find("://")
    if scheme == -1:
        return rest, query, ""
    authority, slash, path = rest[scheme + 3 :].partition("/")
    host = authority.rpartition("@")[2].partition(":")[0]
    return slash + path or "/", query, host
