"""Sentry envelopes as the ingest sees them: a strict parser, the data model, and decompression.

An envelope is one JSON header line followed by items, each a JSON item header line and a
payload. The parser accepts exactly what Relay accepts and says precisely why it refuses the
rest, so a test that passes against the inbox proves the bytes would pass at Sentry too::

    envelope = parse_envelope(decompress(body, "gzip"))
    [event] = envelope.events()
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "JSON_ITEM_TYPES",
    "ContentEncodingError",
    "Envelope",
    "EnvelopeError",
    "Item",
    "decompress",
    "encode_envelope",
    "parse_envelope",
]

# Item types whose payload Relay parses as JSON; anything else (attachments, replay recordings,
# statsd lines) is opaque bytes to the ingest.
JSON_ITEM_TYPES = frozenset(
    {
        "event",
        "transaction",
        "client_report",
        "log",
        "span",
        "session",
        "sessions",
        "check_in",
        "user_report",
        "feedback",
        "profile",
        "profile_chunk",
        "replay_event",
    }
)

_UNPARSED: Any = object()


class EnvelopeError(ValueError):
    """The request body is not an envelope Sentry would accept; the message says where."""


class ContentEncodingError(ValueError):
    """The body's ``Content-Encoding`` is unknown, unavailable, or the data is corrupt."""


@dataclass(frozen=True)
class Item:
    """One envelope item: its header and raw payload; ``json`` parses once, on first use."""

    headers: dict[str, Any]
    payload: bytes
    _json: Any = field(default=_UNPARSED, repr=False, compare=False)

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content_type")
        return value if isinstance(value, str) else None

    @property
    def is_json(self) -> bool:
        ctype = self.content_type or ""
        return self.type in JSON_ITEM_TYPES or ctype.endswith("json")

    @property
    def json(self) -> Any:
        """The parsed payload, or None when the item is not JSON (or not valid JSON)."""
        if self._json is _UNPARSED:
            value: Any = None
            if self.is_json and self.payload:
                try:
                    value = json.loads(self.payload)
                except ValueError:
                    value = None
            object.__setattr__(self, "_json", value)
        return self._json


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: its header and items in wire order."""

    headers: dict[str, Any]
    items: tuple[Item, ...]

    @property
    def event_id(self) -> str | None:
        value = self.headers.get("event_id")
        return value if isinstance(value, str) else None

    def items_of(self, type: str) -> list[Item]:
        return [item for item in self.items if item.type == type]

    def payloads(self, type: str) -> list[dict[str, Any]]:
        """The JSON payloads of the items of one type (non-object payloads are skipped)."""
        return [
            item.json for item in self.items if item.type == type and isinstance(item.json, dict)
        ]

    def events(self) -> list[dict[str, Any]]:
        return self.payloads("event")

    def transactions(self) -> list[dict[str, Any]]:
        return self.payloads("transaction")


def _json_line(data: bytes, start: int, end: int, what: str) -> dict[str, Any]:
    line = data[start:end]
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise EnvelopeError(f"{what} at byte {start} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} at byte {start} must be a JSON object, got {line[:60]!r}")
    return value


def parse_envelope(data: bytes) -> Envelope:
    """Parse an uncompressed envelope, raising :class:`EnvelopeError` where Relay would refuse it.

    Items either declare ``length`` (exactly that many payload bytes, then a newline or the end)
    or run to the next newline. A trailing newline after the last item is optional.
    """
    # Own parser: sentry_sdk's Envelope.deserialize is lenient (no length checks); Relay is not.
    if not data.strip():
        raise EnvelopeError("empty envelope: expected a JSON header line")
    newline = data.find(b"\n")
    header_end = len(data) if newline < 0 else newline
    headers = _json_line(data, 0, header_end, "envelope header")
    items: list[Item] = []
    offset = header_end + 1
    while offset < len(data):
        item, offset = _parse_item(data, offset, len(items))
        items.append(item)
    return Envelope(headers=headers, items=tuple(items))


def _parse_item(data: bytes, start: int, index: int) -> tuple[Item, int]:
    what = f"item {index} header"
    newline = data.find(b"\n", start)
    header_end = len(data) if newline < 0 else newline
    headers = _json_line(data, start, header_end, what)
    item_type = headers.get("type")
    if not isinstance(item_type, str) or not item_type:
        raise EnvelopeError(f"{what} at byte {start} has no 'type': {data[start:header_end]!r}")
    payload_start = min(header_end + 1, len(data))
    length = headers.get("length")
    if length is not None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise EnvelopeError(f"{what} ({item_type}) has an invalid length {length!r}")
        payload_end = payload_start + length
        if payload_end > len(data):
            raise EnvelopeError(
                f"item {index} ({item_type}) declares length {length} but only "
                f"{len(data) - payload_start} bytes follow its header"
            )
        if payload_end < len(data) and data[payload_end : payload_end + 1] != b"\n":
            raise EnvelopeError(
                f"item {index} ({item_type}): expected a newline after {length} payload bytes, "
                f"found {data[payload_end : payload_end + 10]!r} (is 'length' wrong?)"
            )
    else:
        found = data.find(b"\n", payload_start)
        payload_end = len(data) if found < 0 else found
    payload = data[payload_start:payload_end]
    item = Item(
        headers=headers, payload=payload, _json=_strict_json(item_type, headers, payload, index)
    )
    return item, payload_end + 1


def _strict_json(item_type: str, headers: Mapping[str, Any], payload: bytes, index: int) -> Any:
    if item_type not in JSON_ITEM_TYPES:
        ctype = headers.get("content_type")
        # Non-strict JSON items are parsed lazily, on first access to Item.json.
        return _UNPARSED if isinstance(ctype, str) and ctype.endswith("json") else None
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise EnvelopeError(
            f"item {index} ({item_type}) payload is not valid JSON: {exc}; "
            f"starts with {payload[:60]!r}"
        ) from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"item {index} ({item_type}) payload must be a JSON object")
    return value


def encode_envelope(
    headers: Mapping[str, Any], items: Sequence[tuple[Mapping[str, Any], Any]]
) -> bytes:
    """Serialize an envelope the way the SDKs do (every item length-prefixed).

    A payload that is not ``bytes`` is JSON-encoded. Handy for tests that hand-craft envelopes.
    """
    parts = [json.dumps(dict(headers)).encode()]
    for item_headers, payload in items:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        parts.append(json.dumps({**item_headers, "length": len(body)}).encode())
        parts.append(body)
    return b"\n".join(parts) + b"\n"


def decompress(body: bytes, content_encoding: str | None) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate, br, zstd, identity; a list applies in order).

    Raises :class:`ContentEncodingError` naming the encoding when it is unknown, its optional
    dependency is missing, or the data does not decode.
    """
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        body = _decode_one(body, coding)
    return body


def _decode_one(body: bytes, coding: str) -> bytes:
    if coding == "identity":
        return body
    try:
        if coding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                # Some clients send raw deflate without the zlib wrapper the RFC asks for.
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if coding == "br":
            return _optional("brotli").decompress(body)  # type: ignore[no-any-return]
        if coding == "zstd":
            zstandard = _optional("zstandard")
            # A decompressobj copes with frames that omit the content size, as streams do.
            return zstandard.ZstdDecompressor().decompressobj().decompress(body)  # type: ignore[no-any-return]
    except ContentEncodingError:
        raise
    except Exception as exc:
        raise ContentEncodingError(f"body is not valid {coding} data: {exc}") from None
    raise ContentEncodingError(
        f"unsupported Content-Encoding {coding!r}: use gzip, deflate, br, zstd or identity"
    )


def _optional(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ContentEncodingError(
            f"decoding this body needs the {module!r} package: pip install 'otel-sentry[inbox]'"
        ) from None
