"""sentry_sdk's scope API, kept true when the spans are OpenTelemetry's.

Code written for sentry_sdk calls ``sentry_sdk.set_tag()``, ``set_user()``, ``set_context()``,
``set_transaction_name()`` and renders ``get_traceparent()`` / ``trace_propagation_meta()`` into
its HTML so the browser SDK continues the trace. Under sentry_sdk alone the first four reach the
transaction too (its scope is applied when the transaction is sent) and the last two describe
the active span. Here transactions are built from spans, off the request thread, and sentry_sdk's
scope holds no span, so:

- ``set_tag``, ``set_tags``, ``set_user`` and ``set_context`` still write to sentry_sdk's scope
  (errors read it), and also to the request's root span, as ``otel_sentry.set_tag()`` and the
  others do (context.py);
- ``set_transaction_name`` names the root span's transaction (``sentry.description`` and
  ``sentry.source``, which the bridge honours);
- ``get_traceparent``, ``get_baggage`` and ``trace_propagation_meta`` (scope methods, which the
  module-level functions call) give the headers the project's propagator writes for the current
  OpenTelemetry span: the trace the page load must continue. Without a span, sentry_sdk's own.

Only the module-level functions are replaced for the first group: a name imported before
``init()`` (``from sentry_sdk import set_tag`` at the top of a module imported earlier) keeps
sentry_sdk's function, which still reaches errors. :func:`uninstall` puts everything back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import sentry_sdk
import sentry_sdk.api
from opentelemetry import propagate, trace
from sentry_sdk.scope import Scope
from sentry_sdk.tracing_utils import Baggage

from otel_sentry._internal import context

__all__ = ["install", "installed", "uninstall"]

_originals: dict[tuple[object, str], Any] = {}


def _current_span() -> trace.Span | None:
    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


def _headers() -> dict[str, str] | None:
    if _current_span() is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


# -- writes that reach the transaction too -----------------------------------------------------
def _api(name: str) -> Any:
    return _originals[(sentry_sdk.api, name)]


def set_tag(key: str, value: Any) -> None:
    _api("set_tag")(key, value)
    context.mirror_tag(key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    _api("set_tags")(tags)
    for key, value in tags.items():
        context.mirror_tag(key, value)


def set_user(value: dict[str, Any] | None) -> None:
    _api("set_user")(value)
    context.mirror_user(value)


def set_context(key: str, value: dict[str, Any]) -> None:
    _api("set_context")(key, value)
    context.mirror_context(key, value)


def _set_transaction_name(self: Scope, name: str, source: str | None = None) -> None:
    _originals[(Scope, "set_transaction_name")](self, name, source)
    context.name_transaction(name, source or "custom")


# -- reads that describe the current span --------------------------------------------------------
def _get_traceparent(self: Scope, *args: Any, **kwargs: Any) -> str | None:
    headers = _headers()
    if headers is None:
        return _originals[(Scope, "get_traceparent")](self, *args, **kwargs)  # type: ignore[no-any-return]
    return headers.get("sentry-trace")


def _get_baggage(self: Scope, *args: Any, **kwargs: Any) -> Baggage | None:
    headers = _headers()
    if headers is None:
        return _originals[(Scope, "get_baggage")](self, *args, **kwargs)  # type: ignore[no-any-return]
    raw = headers.get("baggage")
    return Baggage.from_incoming_header(raw) if raw else None


def _iter_trace_propagation_headers(
    self: Scope, *args: Any, **kwargs: Any
) -> Iterator[tuple[str, str]]:
    headers = _headers()
    if headers is None:
        yield from _originals[(Scope, "iter_trace_propagation_headers")](self, *args, **kwargs)
        return
    for name in ("sentry-trace", "baggage"):
        if headers.get(name):
            yield name, headers[name]


_MODULE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "set_tag": set_tag,
    "set_tags": set_tags,
    "set_user": set_user,
    "set_context": set_context,
}
_SCOPE_METHODS: dict[str, Callable[..., Any]] = {
    "set_transaction_name": _set_transaction_name,
    "get_traceparent": _get_traceparent,
    "get_baggage": _get_baggage,
    # trace_propagation_meta() and the module's iter headers go through it
    "iter_trace_propagation_headers": _iter_trace_propagation_headers,
}


def install() -> None:
    """Idempotent; ``init()`` calls it, ``shutdown()`` calls :func:`uninstall`."""
    if _originals:
        return
    for name, replacement in _MODULE_FUNCTIONS.items():
        original = getattr(sentry_sdk.api, name)
        _originals[(sentry_sdk.api, name)] = original
        setattr(sentry_sdk.api, name, replacement)
        if getattr(sentry_sdk, name, None) is original:
            setattr(sentry_sdk, name, replacement)
    for name, replacement in _SCOPE_METHODS.items():
        _originals[(Scope, name)] = getattr(Scope, name)
        setattr(Scope, name, replacement)


def uninstall() -> None:
    for (owner, name), original in _originals.items():
        if owner is sentry_sdk.api and getattr(sentry_sdk, name, None) is _MODULE_FUNCTIONS[name]:
            setattr(sentry_sdk, name, original)
        setattr(owner, name, original)
    _originals.clear()


def installed() -> bool:
    return bool(_originals)
