"""JSON for what leaves the process: events and envelope headers, as compact UTF-8 bytes.

Serializing every transaction is the biggest single cost of the export thread after scrubbing,
and the export thread competes with the request thread for the GIL. orjson does it in about a
fifth of the stdlib's time (BENCHMARKS.md, "Distant ingest"), so it is used where installed
(a base dependency on CPython); the stdlib is the fallback, and the reference for the output:

- anything JSON has no type for becomes ``str(value)`` (the stdlib's ``default=str``), dates and
  dataclasses included; subclasses of str, int, float, dict and list are what they subclass;
- NaN and infinities become ``null`` (Sentry refuses them);
- keys that are not strings become strings;
- what orjson refuses (integers past 64 bits, keys it cannot turn into strings) goes through the
  stdlib instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "envelope_bytes"]

try:
    import orjson
except ImportError:  # pragma: no cover - a platform without orjson wheels
    _orjson: Any = None
else:
    _orjson = orjson
_OPTIONS = (
    (
        _orjson.OPT_NON_STR_KEYS
        | _orjson.OPT_PASSTHROUGH_DATETIME
        | _orjson.OPT_PASSTHROUGH_DATACLASS
    )
    if _orjson is not None
    else 0
)


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes (see the module's rules)."""
    if _orjson is not None:
        try:
            out: bytes = _orjson.dumps(value, default=str, option=_OPTIONS)
        except _orjson.JSONEncodeError:
            pass
        else:
            return out
    return _stdlib(value)


def _stdlib(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str).encode()
    except ValueError:  # NaN or infinity somewhere: null, as orjson writes them
        return json.dumps(_finite(value), separators=(",", ":"), default=str).encode()


def _finite(value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def envelope_bytes(envelope: Any) -> bytes:
    """A sentry_sdk ``Envelope`` as Sentry's envelope format: header lines through :func:`dumps`."""
    parts = [dumps(envelope.headers), b"\n"]
    for item in envelope.items:
        payload = item.get_bytes()
        parts += [dumps({**item.headers, "length": len(payload)}), b"\n", payload, b"\n"]
    return b"".join(parts)
