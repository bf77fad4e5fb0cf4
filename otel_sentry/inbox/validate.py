"""Checks that what reached the inbox is what Sentry would ingest cleanly.

Events and transactions go through Relay's own normalizer (``sentry_relay``, when installed):
every entry it adds to ``errors`` or ``_meta`` is a problem. Envelope-level rules that the
normalizer does not see (one event per envelope, the dynamic sampling context, log and span
containers, client reports) are checked here directly. Problems are plain sentences::

    transaction 3f2a...: timestamp: invalid_data (input contains invalid characters), value 'bad'
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from .store import ReceivedEnvelope

__all__ = ["Validator"]

_MAX_EVENT_BYTES = 1024 * 1024
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_LOG_LEVELS = frozenset({"trace", "debug", "info", "warn", "error", "fatal"})
_ATTRIBUTE_TYPES = frozenset({"string", "integer", "double", "boolean"})
# Timestamps Relay would refuse as clock trouble rather than accept silently.
_MAX_SECS_IN_FUTURE = 60
_MAX_SECS_IN_PAST = 30 * 24 * 3600


class Validator:
    """Finds problems in received envelopes; Relay is loaded lazily and used if installed."""

    def __init__(self, relay: bool = True) -> None:
        self._use_relay = relay
        self._lock = threading.Lock()
        self._normalizers: dict[int, Any] = {}
        self._relay_missing = False

    def check(self, received: ReceivedEnvelope) -> list[str]:
        envelope = received.envelope
        problems: list[str] = []
        primary = [i for i in envelope.items if i.type in ("event", "transaction")]
        if len(primary) > 1:
            problems.append(
                f"envelope {envelope.event_id}: {len(primary)} event/transaction items; "
                "Sentry accepts at most one per envelope"
            )
        problems += _check_dsc(envelope.headers.get("trace"), envelope.event_id)
        for item in envelope.items:
            payload = item.json if isinstance(item.json, dict) else {}
            label = f"{item.type} {payload.get('event_id') or envelope.event_id}"
            if item.type in ("event", "transaction"):
                if len(item.payload) > _MAX_EVENT_BYTES:
                    problems.append(
                        f"{label}: {len(item.payload)} bytes, over Sentry's 1 MiB limit"
                    )
                problems += [f"{label}: {p}" for p in self._relay(item.payload, received)]
                problems += _check_trace_link(label, payload, envelope.headers.get("trace"))
            elif item.type in ("log", "span"):
                problems += [
                    f"{item.type} item: {p}" for p in _check_container(item.headers, payload)
                ]
                if item.type == "log":
                    problems += [f"log item: {p}" for p in _check_logs(payload)]
            elif item.type == "client_report":
                problems += [f"client_report: {p}" for p in _check_client_report(payload)]
        return problems

    def _relay(self, raw: bytes, received: ReceivedEnvelope) -> list[str]:
        normalizer = self._normalizer(received.project_id or 1)
        if normalizer is None:
            return []
        from sentry_relay.exceptions import RelayError

        try:
            with self._lock:
                normalized = normalizer.normalize_event(raw_event=raw)
        except RelayError as exc:
            # Relay drops such an event outright (e.g. a span without trace_id).
            return [f"Relay rejects it: {getattr(exc, 'message', exc)}"]
        return _relay_findings(normalized, _declared_trims(raw))

    def _normalizer(self, project_id: int) -> Any:
        if not self._use_relay or self._relay_missing:
            return None
        with self._lock:
            if project_id not in self._normalizers:
                try:
                    from sentry_relay.processing import StoreNormalizer
                except ImportError:
                    self._relay_missing = True
                    return None
                self._normalizers[project_id] = StoreNormalizer(
                    project_id=project_id,
                    max_secs_in_future=_MAX_SECS_IN_FUTURE,
                    max_secs_in_past=_MAX_SECS_IN_PAST,
                )
            return self._normalizers[project_id]


def _declared_trims(raw: bytes) -> set[str]:
    """Paths the SDK itself trimmed and said so in the event's ``_meta`` (sentry_sdk's
    ``max_value_length``, its breadcrumb cap, databag limits): what Sentry shows as "trimmed",
    not a fault of the sender."""
    try:
        meta = json.loads(raw).get("_meta")
    except (ValueError, AttributeError):
        return set()
    return {path for path, _ in _walk_meta(meta, "")} if isinstance(meta, dict) else set()


def _relay_findings(
    normalized: dict[str, Any], declared: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for path, meta in _walk_meta(normalized.get("_meta") or {}, ""):
        seen.add(path)
        if path in declared and not meta.get("err"):
            continue
        for error in meta.get("err") or ():
            kind, data = (error[0], error[1]) if isinstance(error, list) else (error, {})
            reason = data.get("reason") if isinstance(data, dict) else None
            text = f"{path}: {kind}" + (f" ({reason})" if reason else "")
            if "val" in meta:
                text += f", value {meta['val']!r}"
            found.append(text)
        if "len" in meta:
            found.append(f"{path}: trimmed by Relay (original length {meta['len']})")
        if meta.get("rem"):
            found.append(f"{path}: rewritten by Relay rule(s) {meta['rem']}")
    for error in normalized.get("errors") or ():
        name = error.get("name") or "<event>"
        if name not in seen:
            detail = {k: v for k, v in error.items() if k not in ("type", "name")}
            found.append(
                f"{name}: {error.get('type')} {detail}"
                if detail
                else f"{name}: {error.get('type')}"
            )
    return found


def _walk_meta(node: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for key, value in node.items():
        if not isinstance(value, dict):
            continue
        if key == "":
            found.append((prefix or "<event>", value))
        else:
            found += _walk_meta(value, f"{prefix}.{key}" if prefix else key)
    return found


def _check_dsc(dsc: Any, event_id: str | None) -> list[str]:
    if dsc is None:
        return []
    label = f"envelope {event_id} trace header"
    if not isinstance(dsc, dict):
        return [f"{label}: must be an object, got {dsc!r}"]
    problems = []
    if not _HEX32.match(str(dsc.get("trace_id", ""))):
        problems.append(f"{label}: trace_id {dsc.get('trace_id')!r} is not 32 lowercase hex")
    if not dsc.get("public_key"):
        problems.append(f"{label}: public_key is missing (Relay ignores such a DSC)")
    rand, rate, sampled = dsc.get("sample_rand"), dsc.get("sample_rate"), dsc.get("sampled")
    try:
        rand_f = float(rand) if rand is not None else None
        rate_f = float(rate) if rate is not None else None
    except (TypeError, ValueError):
        return [*problems, f"{label}: sample_rand {rand!r} / sample_rate {rate!r} not numbers"]
    if rand_f is not None and not 0 <= rand_f < 1:
        problems.append(f"{label}: sample_rand {rand!r} is outside [0, 1)")
    if rate_f is not None and not 0 <= rate_f <= 1:
        problems.append(f"{label}: sample_rate {rate!r} is outside [0, 1]")
    if rand_f is not None and rate_f is not None and sampled in ("true", "false", True, False):
        expected = rand_f < rate_f
        if expected != (sampled in ("true", True)):
            problems.append(
                f"{label}: sampled={sampled} contradicts sample_rand {rand} < sample_rate {rate}"
            )
    return problems


def _check_trace_link(label: str, payload: dict[str, Any], dsc: Any) -> list[str]:
    contexts = payload.get("contexts")
    trace = contexts.get("trace") if isinstance(contexts, dict) else None
    if not isinstance(trace, dict) or not isinstance(dsc, dict) or "trace_id" not in dsc:
        return []
    if trace.get("trace_id") != dsc["trace_id"]:
        return [
            f"{label}: contexts.trace.trace_id {trace.get('trace_id')} differs from the "
            f"envelope's DSC trace_id {dsc['trace_id']} (the trace view would split)"
        ]
    return []


def _check_container(headers: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    items = payload.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        return ["'items' must be a list"]
    count = headers.get("item_count")
    if count is not None and count != len(items):
        return [f"item_count header says {count} but the payload holds {len(items)}"]
    return []


def _check_logs(payload: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for n, record in enumerate(payload.get("items") or ()):
        if not isinstance(record, dict):
            problems.append(f"record {n} is not an object")
            continue
        if record.get("level") not in _LOG_LEVELS:
            problems.append(
                f"record {n}: level {record.get('level')!r} not in {sorted(_LOG_LEVELS)}"
            )
        if not isinstance(record.get("body"), str):
            problems.append(f"record {n}: body must be a string")
        if not isinstance(record.get("timestamp"), (int, float)):
            problems.append(f"record {n}: timestamp must be seconds since the epoch")
        if not _HEX32.match(str(record.get("trace_id", ""))):
            problems.append(f"record {n}: trace_id {record.get('trace_id')!r} is not 32 hex")
        span_id = record.get("span_id")
        if span_id is not None and not _HEX16.match(str(span_id)):
            problems.append(f"record {n}: span_id {span_id!r} is not 16 hex")
        for key, attribute in (record.get("attributes") or {}).items():
            if not isinstance(attribute, dict) or attribute.get("type") not in _ATTRIBUTE_TYPES:
                problems.append(
                    f"record {n}: attribute {key!r} must be {{'value', 'type'}} with type in "
                    f"{sorted(_ATTRIBUTE_TYPES)}, got {attribute!r}"
                )
    return problems


def _check_client_report(payload: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for entry in payload.get("discarded_events") or ():
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("reason"), str)
            and isinstance(entry.get("category"), str)
            and isinstance(entry.get("quantity"), int)
            and entry["quantity"] >= 0
        )
        if not ok:
            problems.append(
                f"discarded_events entry {entry!r} needs reason, category, quantity >= 0"
            )
    return problems
