"""What the inbox received, kept in memory behind one lock, with counters and a wake-up signal.

The store is the single source for every query the :class:`~otel_sentry.inbox.Inbox` answers.
With ``keep_payloads=False`` it keeps counters only, so a benchmark can push many thousands of
envelopes through it with bounded memory.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .envelope import Envelope, Item

__all__ = ["Counts", "ReceivedEnvelope", "ReceivedItem", "Store", "item_quantities"]

# Sentry's data category per item type, as rate limits and client reports name them.
_CATEGORIES = {
    "event": "error",
    "transaction": "transaction",
    "span": "span",
    "log": "log_item",
    "attachment": "attachment",
    "session": "session",
    "sessions": "session",
    "profile": "profile",
    "profile_chunk": "profile_chunk",
    "replay_event": "replay",
    "replay_recording": "replay",
    "check_in": "monitor",
    "statsd": "metric_bucket",
    "client_report": "internal",
}
_MAX_REJECTIONS = 50


@dataclass(frozen=True)
class ReceivedEnvelope:
    """An accepted envelope and how it arrived (request headers are lowercased).

    ``http_version`` is ``"HTTP/2"``, ``"HTTP/1.1"`` or ``"HTTP/1.0"``; None when reloaded from
    an archive, which does not keep it.
    """

    envelope: Envelope
    received_at: float
    project_id: int | None
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    http_version: str | None = None

    @property
    def event_id(self) -> str | None:
        return self.envelope.event_id

    @property
    def items(self) -> list[ReceivedItem]:
        return [ReceivedItem(item, self, i) for i, item in enumerate(self.envelope.items)]


@dataclass(frozen=True)
class ReceivedItem:
    """One item of a received envelope, knowing the envelope it came in."""

    item: Item
    envelope: ReceivedEnvelope
    index: int

    @property
    def type(self) -> str:
        return self.item.type

    @property
    def headers(self) -> dict[str, Any]:
        return self.item.headers

    @property
    def payload(self) -> bytes:
        return self.item.payload

    @property
    def json(self) -> Any:
        return self.item.json


@dataclass(frozen=True)
class Counts:
    """A snapshot of the counters.

    ``items`` counts items by type; ``categories`` by Sentry data category, with a transaction
    also counting ``span`` = its spans + 1 as Sentry does; ``discarded`` sums the client
    reports' quantities by (reason, category); ``rejected`` counts refused requests by kind
    (``auth``, ``parse``, ``encoding``, ``too_large``, ``unavailable``: OTLP without
    opentelemetry-proto) and ``rejections`` keeps the latest reasons.
    """

    requests: int = 0
    envelopes: int = 0
    bytes: int = 0
    items: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    spans_in_transactions: int = 0
    discarded: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    rejections: tuple[str, ...] = ()
    faulted: int = 0
    otlp_spans: int = 0
    otlp_logs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "envelopes": self.envelopes,
            "bytes": self.bytes,
            "items": self.items,
            "categories": self.categories,
            "spans_in_transactions": self.spans_in_transactions,
            "discarded": [
                {"reason": reason, "category": category, "quantity": quantity}
                for (reason, category), quantity in sorted(self.discarded.items())
            ],
            "rejected": self.rejected,
            "rejections": list(self.rejections),
            "faulted": self.faulted,
            "otlp_spans": self.otlp_spans,
            "otlp_logs": self.otlp_logs,
        }

    def summary(self) -> str:
        """One line for error messages: what did arrive."""
        items = ", ".join(f"{t}x{n}" for t, n in sorted(self.items.items())) or "no items"
        text = f"{self.envelopes} envelope(s) with {items}"
        if self.otlp_spans or self.otlp_logs:
            text += f"; OTLP spans {self.otlp_spans}, logs {self.otlp_logs}"
        if self.rejected:
            text += f"; rejected {dict(self.rejected)}"
            if self.rejections:
                text += f" (last: {self.rejections[-1]})"
        if self.faulted:
            text += f"; faulted {self.faulted}"
        return text


def item_quantities(item: Item) -> dict[str, int]:
    """How much of each data category one item carries."""
    category = _CATEGORIES.get(item.type, item.type)
    payload = item.json if item.type in ("transaction", "span", "log") else None
    if item.type == "transaction":
        spans = payload.get("spans") if isinstance(payload, dict) else None
        return {"transaction": 1, "span": (len(spans) if isinstance(spans, list) else 0) + 1}
    if item.type in ("span", "log"):
        inner = payload.get("items") if isinstance(payload, dict) else None
        if isinstance(inner, list):
            return {category: len(inner)}
        count = item.headers.get("item_count")
        return {category: count if isinstance(count, int) else 1}
    return {category: 1}


class Store:
    """Thread-safe record of everything received; ``wait_for`` wakes on every change."""

    def __init__(self, keep_payloads: bool = True) -> None:
        self.keep_payloads = keep_payloads
        # Reentrant, so a wait_for predicate may call the query methods while holding it.
        self._cond = threading.Condition(threading.RLock())
        self._reset()

    def _reset(self) -> None:
        self._envelopes: list[ReceivedEnvelope] = []
        self._otlp_spans: list[dict[str, Any]] = []
        self._otlp_logs: list[dict[str, Any]] = []
        self._problems: list[str] = []
        self._requests = 0
        self._accepted = 0
        self._bytes = 0
        self._items: Counter[str] = Counter()
        self._categories: Counter[str] = Counter()
        self._spans_in_transactions = 0
        self._discarded: Counter[tuple[str, str]] = Counter()
        self._rejected: Counter[str] = Counter()
        self._rejections: deque[str] = deque(maxlen=_MAX_REJECTIONS)
        self._faulted = 0
        self._otlp_span_count = 0
        self._otlp_log_count = 0

    # -- recording -----------------------------------------------------------------------------

    def count_request(self, nbytes: int) -> None:
        with self._cond:
            self._requests += 1
            self._bytes += nbytes

    def reject(self, kind: str, reason: str) -> None:
        with self._cond:
            self._rejected[kind] += 1
            self._rejections.append(f"{kind}: {reason}")
            self._cond.notify_all()

    def count_fault(self) -> None:
        with self._cond:
            self._faulted += 1
            self._cond.notify_all()

    def add_envelope(self, received: ReceivedEnvelope) -> None:
        with self._cond:
            self._accepted += 1
            for item in received.envelope.items:
                self._tally(item)
            if self.keep_payloads:
                self._envelopes.append(received)
            self._cond.notify_all()

    def _tally(self, item: Item) -> None:
        self._items[item.type] += 1
        for category, quantity in item_quantities(item).items():
            self._categories[category] += quantity
        if item.type == "transaction":
            spans = item.json.get("spans") if isinstance(item.json, dict) else None
            self._spans_in_transactions += len(spans) if isinstance(spans, list) else 0
        elif item.type == "client_report" and isinstance(item.json, dict):
            for entry in item.json.get("discarded_events") or ():
                if isinstance(entry, dict) and isinstance(entry.get("quantity"), int):
                    key = (str(entry.get("reason")), str(entry.get("category")))
                    self._discarded[key] += entry["quantity"]

    def add_otlp_spans(self, spans: list[dict[str, Any]]) -> None:
        with self._cond:
            self._otlp_span_count += len(spans)
            if self.keep_payloads:
                self._otlp_spans.extend(spans)
            self._cond.notify_all()

    def add_otlp_logs(self, records: list[dict[str, Any]]) -> None:
        with self._cond:
            self._otlp_log_count += len(records)
            if self.keep_payloads:
                self._otlp_logs.extend(records)
            self._cond.notify_all()

    def add_problems(self, problems: list[str]) -> None:
        if problems:
            with self._cond:
                self._problems.extend(problems)
                self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._reset()
            self._cond.notify_all()

    # -- queries -------------------------------------------------------------------------------

    def envelopes(self) -> list[ReceivedEnvelope]:
        with self._cond:
            return list(self._envelopes)

    def items(self, type: str | None = None) -> list[ReceivedItem]:
        with self._cond:
            envelopes = list(self._envelopes)
        return [
            item
            for received in envelopes
            for item in received.items
            if type is None or item.type == type
        ]

    def otlp_spans(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._otlp_spans)

    def otlp_logs(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._otlp_logs)

    def problems(self) -> list[str]:
        with self._cond:
            return list(self._problems)

    def counts(self) -> Counts:
        with self._cond:
            return Counts(
                requests=self._requests,
                envelopes=self._accepted,
                bytes=self._bytes,
                items=dict(self._items),
                categories=dict(self._categories),
                spans_in_transactions=self._spans_in_transactions,
                discarded=dict(self._discarded),
                rejected=dict(self._rejected),
                rejections=tuple(self._rejections),
                faulted=self._faulted,
                otlp_spans=self._otlp_span_count,
                otlp_logs=self._otlp_log_count,
            )

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds (re-checked on every change) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # A bounded wait also catches predicates that look beyond the store.
                self._cond.wait(min(remaining, 0.25))
            return True
