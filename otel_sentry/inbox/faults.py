"""Faults the inbox can inject into its ingest endpoints, to test how senders cope.

A fault answers ingest requests (envelopes and OTLP) with a chosen status, rate-limit headers,
a delay, or a closed connection, for a number of requests or until cleared::

    inbox.set_fault(Fault(status=429, rate_limits="60:transaction:key", remaining=1))

``close_after`` is a fault of the connection rather than of one request: it closes each
connection after N answers, as nginx (``keepalive_requests``, 1000 by default) and cloud load
balancers do, which a sender that keeps connections open must survive without losing envelopes::

    inbox.set_fault(Fault(close_after=3))   # HTTP/1.1: Connection: close; HTTP/2: GOAWAY

``refuse_encoding`` stands in for an older ingest: bodies in that ``Content-Encoding`` are
answered 400, as a Relay from before zstd answers zstd bodies, and the others are delivered::

    inbox.set_fault(Fault(refuse_encoding="zstd"))
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Fault", "FaultSwitch"]


@dataclass(frozen=True)
class Fault:
    """How to answer faulted requests.

    ``status``: HTTP status (200 keeps delivering, useful with ``rate_limits``).
    ``rate_limits``: ``X-Sentry-Rate-Limits`` value, sent whatever the status.
    ``retry_after``: ``Retry-After`` seconds. ``delay``: seconds to wait before answering.
    ``remaining``: how many requests to fault, None until cleared.
    ``refuse``: close the connection without answering (a network error for the sender); over
    HTTP/2 the request's stream is reset instead, and the connection's other streams carry on.
    ``close_after``: close each connection once it has answered this many requests (all
    requests count, ingest or not, from the connection's start); HTTP/1.1 marks the last
    answer ``Connection: close``, HTTP/2 sends GOAWAY naming the last stream it will answer.
    ``refuse_encoding``: answer envelopes whose body is in this ``Content-Encoding`` with 400
    (counted as rejected ``encoding``), as an ingest without it does; deliver the others.
    """

    status: int = 200
    rate_limits: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    remaining: int | None = None
    refuse: bool = False
    close_after: int | None = None
    refuse_encoding: str | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be an HTTP status (100-599), got {self.status}")
        if self.delay < 0:
            raise ValueError(f"Fault.delay must be >= 0 seconds, got {self.delay}")
        if self.remaining is not None and self.remaining < 1:
            raise ValueError(f"Fault.remaining must be >= 1 or None, got {self.remaining}")
        if self.close_after is not None and self.close_after < 1:
            raise ValueError(f"Fault.close_after must be >= 1 or None, got {self.close_after}")

    @property
    def delivers(self) -> bool:
        """Whether a faulted request is still accepted (a 2xx answer)."""
        return not self.refuse and 200 <= self.status < 300

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from the JSON API's body, naming any unknown or mistyped key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ValueError(f"invalid fault: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultSwitch:
    """The active fault, if any, counting down ``remaining`` safely across request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._remaining: int | None = None

    def set(self, fault: Fault | None) -> None:
        with self._lock:
            self._fault = fault
            self._remaining = fault.remaining if fault else None

    @property
    def current(self) -> Fault | None:
        with self._lock:
            return self._fault

    def closes_after(self, answered: int) -> bool:
        """Whether a connection that has now answered ``answered`` requests must close."""
        fault = self.current
        return fault is not None and fault.close_after is not None and answered >= fault.close_after

    def take(self) -> Fault | None:
        """The fault to apply to this request, consuming one of its ``remaining`` uses."""
        with self._lock:
            fault = self._fault
            if fault is None or self._remaining is None:
                return fault
            self._remaining -= 1
            if self._remaining <= 0:
                self._fault = None
            return fault
