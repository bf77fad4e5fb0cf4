"""FastAPI's own OpenTelemetry telemetry, in place of the contrib instrumentation where it exists.

FastAPI >= 0.165 records each request's server span itself (``fastapi.telemetry``). It switches on
by itself once a global tracer provider is set, and steps aside for a request whose app already
has the contrib ASGI middleware in its stack, so there is never a second server span. Its span
carries what the bridge reads, in the current HTTP conventions: the name ``GET /items/{item_id}``
(``GET`` until the route is matched), ``http.route``, ``http.request.method``, ``url.path``,
``url.query``, ``http.response.status_code``, and ``error.type`` with ERROR status on a 500.
It costs a fraction of the contrib ``FastAPIInstrumentor``, which wraps the app in the generic
ASGI middleware and rebuilds the route match (``BENCHMARKS.md``, "FastAPI's native telemetry").

So where the installed FastAPI has it, ``registry.enable`` leaves ``FastAPIInstrumentor`` off and
calls :func:`use_native` instead, which sets defaults on every ``FastAPI()`` created from then on
(an app's own ``telemetry={...}`` wins, key by key):

- ``exclude``: every request while the ``fastapi`` instrumentation is not wanted (``instrument``,
  ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``) or the contrib one records the spans: FastAPI would
  otherwise trace every request as soon as any tracer provider is set, whatever the user
  switched off. Read per request (one call), so an app follows the latest ``init()``, not the
  one it was created under; an app's own ``exclude`` is asked too.
- ``operation_spans``: off unless ``fastapi_operation_spans`` is on. They are a span per
  dependency, endpoint, serialization and background task: useful while profiling a route, and
  on every request they cost about as much as the server span itself.

FastAPI's span records an unhandled exception as ``error.type`` only; the contrib instrumentation
also adds the exception event (type, message, stack trace) that OTLP backends show, so
:func:`use_native` adds it too, once per exception, where FastAPI notes the exception.

``auto`` keeps the contrib instrumentation while ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``
asks for request or response headers on the span: FastAPI's telemetry records none.

Metrics and logs follow whatever meter and logger providers the app set up, as FastAPI decides.
Apps created before ``init()`` keep FastAPI's defaults (operation spans on); they are traced all
the same. ``fastapi_telemetry="contrib"`` (``OTEL_SENTRY_FASTAPI_TELEMETRY``) keeps the contrib
instrumentation, as on a FastAPI without native telemetry.

    configure(mode="auto", operation_spans=False)     # pipeline, before registry.enable
    if use_contrib(): ...                             # registry.enable, for "fastapi"
    else: use_native(tracing=True)
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import Any

__all__ = ["configure", "native", "stop_using_native", "use_contrib", "use_native", "using_native"]

_mode = "auto"
_operation_spans = False
_defaults: dict[str, Any] = {}
_tracing = False
_original_init: Callable[..., None] | None = None


def configure(*, mode: str, operation_spans: bool) -> None:
    """``fastapi_telemetry`` (auto, native, contrib) and ``fastapi_operation_spans``."""
    global _mode, _operation_spans
    _mode, _operation_spans = mode, operation_spans


def native() -> bool:
    """Whether the installed FastAPI records its own server spans (``fastapi.telemetry``)."""
    try:
        return importlib.util.find_spec("fastapi.telemetry") is not None
    except (ImportError, ValueError):  # no fastapi at all
        return False


_HEADER_CAPTURE = (
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
)


def use_contrib() -> bool:
    """Whether requests are to be traced by the contrib ``FastAPIInstrumentor``."""
    if _mode == "contrib" or not native():
        return True
    return _mode == "auto" and any(os.environ.get(name, "").strip() for name in _HEADER_CAPTURE)


def using_native() -> bool:
    return _original_init is not None


def _not_traced(scope: Any) -> bool:
    return not _tracing


def use_native(*, tracing: bool) -> None:
    """Every ``FastAPI()`` from now on: native telemetry with our defaults (idempotent)."""
    global _original_init, _tracing
    _tracing = tracing
    _defaults["operation_spans"] = _operation_spans
    if _original_init is not None:
        return
    from fastapi import FastAPI

    original: Callable[..., None] = FastAPI.__init__

    @functools.wraps(original)
    def init_with_our_defaults(self: Any, *args: Any, telemetry: Any = None, **kwargs: Any) -> None:
        merged = {**_defaults, "exclude": _not_traced, **(telemetry or {})}
        own = (telemetry or {}).get("exclude")
        if own is not None:
            merged["exclude"] = lambda scope: _not_traced(scope) or bool(own(scope))
        original(self, *args, telemetry=merged, **kwargs)

    _original_init = original
    FastAPI.__init__ = init_with_our_defaults  # type: ignore[method-assign]
    _record_exceptions()


def _record_exceptions() -> None:
    """The exception event on FastAPI's server span, as the contrib instrumentation records it.

    FastAPI calls ``fastapi.telemetry._asgi._exception(scope=..., exc=...)`` for each unhandled
    exception of a request (its middleware and its outermost handler both do; it keeps one of
    each). A private function: if a FastAPI release renames it, the spans keep ``error.type`` and
    lose only the event.
    """
    try:
        from fastapi.telemetry import _asgi
    except ImportError:
        return
    original = getattr(_asgi, "_exception", None)
    if original is None or getattr(original, "_otel_sentry", False):
        return

    def exception_recorded(*, scope: Any, exc: BaseException) -> None:
        telemetry = scope.get("fastapi.telemetry") if hasattr(scope, "get") else None
        seen = getattr(telemetry, "_exceptions", None)
        new = isinstance(seen, list) and not any(known is exc for known in seen)
        original(scope=scope, exc=exc)
        span = getattr(telemetry, "span", None)
        if new and isinstance(exc, Exception) and span is not None and span.is_recording():
            span.record_exception(exc, escaped=True)

    exception_recorded._otel_sentry = True  # type: ignore[attr-defined]
    _asgi._exception = exception_recorded


def stop_using_native() -> None:
    """Undo :func:`use_native` for apps created from now on (shutdown, a re-init)."""
    global _original_init
    if _original_init is None:
        return
    from fastapi import FastAPI

    FastAPI.__init__ = _original_init  # type: ignore[method-assign]
    _original_init = None
