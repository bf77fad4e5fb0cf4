"""User, tags, context and breadcrumbs: written to Sentry's scope *and* to the trace.

Sentry reads them from its scope when it builds an error; OpenTelemetry backends (and our own
transaction export) read them from the request's root span. One call does both, so an error and
its transaction always agree on who the user was.

    otel_sentry.set_user({"id": "42", "email": "ada@example.com"})  # email kept only with PII on
    otel_sentry.set_tag("tenant", "acme")

Per-request isolation comes from the scopes sentry_sdk's framework integrations fork per request
and per task (FastAPI/Starlette, Django, Celery, asyncio), and from spans, which are per request
by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sentry_sdk
from opentelemetry import trace
from opentelemetry.sdk.trace import Span

from otel_sentry._internal.roots import local_root

__all__ = [
    "add_breadcrumb",
    "mirror_context",
    "mirror_tag",
    "mirror_user",
    "name_transaction",
    "set_context",
    "set_tag",
    "set_user",
]

TAG_PREFIX = "sentry.tag."
# OpenTelemetry's names for the user, as Sentry's user fields map onto them.
_USER_ATTRIBUTES = {"id": "enduser.id", "username": "enduser.name", "email": "user.email"}
_PII_FIELDS = frozenset({"email", "ip_address"})


def _recording_root() -> Span | None:
    root = local_root()
    if root is not None and root.is_recording():
        return root
    current = trace.get_current_span()
    return current if isinstance(current, Span) and current.is_recording() else None


_send_default_pii = False


def configure(*, send_default_pii: bool) -> None:
    """``init()`` says whether personal data may be recorded (``shutdown()``: no longer)."""
    global _send_default_pii
    _send_default_pii = send_default_pii


def _pii_allowed() -> bool:
    return _send_default_pii


def set_user(user: Mapping[str, Any] | None) -> None:
    """Identify the user of this request. ``email`` and ``ip_address`` need ``send_default_pii``."""
    scope = sentry_sdk.get_isolation_scope()
    if user is None:
        scope.set_user(None)
        return
    allowed = {k: v for k, v in user.items() if k not in _PII_FIELDS or _pii_allowed()}
    scope.set_user(allowed)
    mirror_user(allowed)


def set_tag(key: str, value: str | int | float | bool) -> None:
    """A searchable tag on the error and on the request's transaction."""
    sentry_sdk.get_isolation_scope().set_tag(key, value)
    mirror_tag(key, value)


def set_context(name: str, values: Mapping[str, Any] | None) -> None:
    """Structured context; primitive values also land on the root span as ``<name>.<key>``."""
    sentry_sdk.get_isolation_scope().set_context(
        name,
        dict(values) if values is not None else None,  # type: ignore[arg-type]
    )
    mirror_context(name, values)


# -- the root span's side, also used for sentry_sdk's own functions (sentry/scope_api.py) -------
def mirror_user(user: Mapping[str, Any] | None) -> None:
    root = _recording_root()
    if root is None or not user:
        return
    for key, attribute in _USER_ATTRIBUTES.items():
        value = user.get(key)
        if value is not None and (key not in _PII_FIELDS or _pii_allowed()):
            root.set_attribute(attribute, str(value))


def mirror_tag(key: str, value: Any) -> None:
    root = _recording_root()
    if root is not None:
        tag = value if isinstance(value, (str, bool, int, float)) else str(value)
        root.set_attribute(TAG_PREFIX + key, tag)


def mirror_context(name: str, values: Mapping[str, Any] | None) -> None:
    root = _recording_root()
    if root is not None and values:
        for key, value in values.items():
            if isinstance(value, (str, bool, int, float)):
                root.set_attribute(f"{name}.{key}", value)


def name_transaction(name: str, source: str = "custom") -> None:
    """The request's transaction is called ``name`` (sentry_sdk's ``set_transaction_name``)."""
    root = _recording_root()
    if root is not None:
        root.set_attribute("sentry.description", name)
        root.set_attribute("sentry.source", source)


def add_breadcrumb(
    message: str,
    *,
    category: str | None = None,
    level: str = "info",
    data: Mapping[str, Any] | None = None,
) -> None:
    """A step on the way to an error; also an event on the current span."""
    crumb: dict[str, Any] = {"message": message, "level": level}
    if category:
        crumb["category"] = category
    if data:
        crumb["data"] = dict(data)
    sentry_sdk.add_breadcrumb(crumb)
    span = trace.get_current_span()
    if span.is_recording():
        attributes: dict[str, Any] = {"level": level}
        if category:
            attributes["category"] = category
        if data:
            attributes.update(
                {k: v for k, v in data.items() if isinstance(v, (str, bool, int, float))}
            )
        span.add_event(message, attributes)
