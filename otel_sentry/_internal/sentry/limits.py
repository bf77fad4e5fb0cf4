"""Sentry's size limits, applied before sending instead of discovered as a 413 or a dropped event.

Relay refuses an envelope item over 1 MiB (an event or a transaction) and trims long strings
itself; an item it refuses is lost whole. Strings are bounded where they are made: span
attributes by the ``TracerProvider``'s limits (``pipeline.py``), event strings by sentry_sdk's
``max_value_length``. What can still grow past the limit is *how many* of them there are: a
transaction with a thousand spans each carrying a 16 KiB statement, an event with a hundred
breadcrumbs full of data. These functions make such an item fit, dropping the least useful
parts first, and say what they dropped:

- a transaction: long span data values are cut to 1 KiB, then spans are dropped from the end
  (the latest; the root's context stays), counted by the caller as lost spans;
- an event: breadcrumb data, then older breadcrumbs, then local variables, then the middle of
  long stack traces.

Only items whose serialized size is over the limit pay for any of this.
"""

from __future__ import annotations

from typing import Any

from otel_sentry._internal.sentry.encode import dumps

__all__ = ["MAX_ITEM_BYTES", "fit_event", "fit_transaction"]

# Relay's limit for one event or transaction item is 1 MiB; leave room for the envelope.
MAX_ITEM_BYTES = 1_000_000
_SHORT = 1024
_CUT = "..."


def _size(event: dict[str, Any]) -> int:
    return len(dumps(event))


def _shorten_values(data: dict[str, Any], limit: int) -> None:
    for key, value in data.items():
        if isinstance(value, str) and len(value) > limit:
            data[key] = value[: limit - len(_CUT)] + _CUT
        elif isinstance(value, (list, tuple)) and len(str(value)) > limit:
            data[key] = str(value)[: limit - len(_CUT)] + _CUT


def fit_transaction(event: dict[str, Any], size: int) -> int:
    """Make a transaction of ``size`` serialized bytes fit; returns how many spans were dropped.

    Changes ``event`` in place; the caller serializes it again.
    """
    if size <= MAX_ITEM_BYTES:
        return 0
    spans: list[dict[str, Any]] = event.get("spans") or []
    for span in spans:
        data = span.get("data")
        if isinstance(data, dict):
            _shorten_values(data, _SHORT)
        description = span.get("description")
        if isinstance(description, str) and len(description) > _SHORT:
            span["description"] = description[: _SHORT - len(_CUT)] + _CUT
    trace = (event.get("contexts") or {}).get("trace") or {}
    if isinstance(trace.get("data"), dict):
        _shorten_values(trace["data"], _SHORT)
    size = _size(event)
    dropped = 0
    while size > MAX_ITEM_BYTES and spans:
        # Drop about as many as the overshoot needs, at least one, from the end.
        average = max(1, size // (len(spans) + 1))
        n = max(1, min(len(spans), (size - MAX_ITEM_BYTES) // average + 1))
        del spans[-n:]
        dropped += n
        size = _size(event)
    return dropped


def fit_event(event: dict[str, Any]) -> dict[str, Any]:
    """An error event that fits in one item (changed in place and returned)."""
    size = _size(event)
    if size <= MAX_ITEM_BYTES:
        return event
    crumbs = event.get("breadcrumbs")
    values: list[Any] = (
        crumbs.get("values", []) if isinstance(crumbs, dict) else crumbs or []  # both shapes
    )
    for crumb in values:
        if isinstance(crumb, dict):
            crumb.pop("data", None)
    size = _size(event)
    while size > MAX_ITEM_BYTES and values:
        del values[: max(1, len(values) // 2)]  # the oldest half
        size = _size(event)
    if size <= MAX_ITEM_BYTES:
        return event
    frames_lists = [
        exc.get("stacktrace", {}).get("frames", [])
        for exc in (event.get("exception") or {}).get("values", [])
        if isinstance(exc, dict)
    ]
    for frames in frames_lists:
        for frame in frames:
            if isinstance(frame, dict):
                frame.pop("vars", None)
    size = _size(event)
    for frames in frames_lists:
        if size <= MAX_ITEM_BYTES:
            break
        if len(frames) > 20:
            del frames[10:-10]  # keep where it started and where it failed
            size = _size(event)
    for key in ("extra", "contexts", "request"):
        if size <= MAX_ITEM_BYTES:
            break
        if key in event and key != "contexts":
            event.pop(key, None)
        elif key == "contexts":
            contexts = event.get("contexts") or {}
            for name in [n for n in contexts if n not in ("trace", "runtime", "os")]:
                contexts.pop(name, None)
        size = _size(event)
    return event
