"""Test what your service sends to Sentry, in-process, with no network and no mocks of your code.

A pytest plugin (registered automatically when otel-sentry is installed) with one fixture,
``otel_sentry_capture``: for the duration of a test, everything the pipeline would send to Sentry
is kept as parsed envelopes instead, through the same transport seam sentry_sdk uses.

    def test_checkout_error_is_linked(otel_sentry_capture, client):
        client.post("/checkout/2")
        error = otel_sentry_capture.one_error("CheckoutError")
        txn = otel_sentry_capture.transaction("POST /checkout/{item_id}")
        otel_sentry_capture.assert_linked(error, txn)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope as SdkEnvelope
from sentry_sdk.transport import Transport

from otel_sentry._internal.setup import current_settings, flush, init, shutdown
from otel_sentry.inbox.envelope import Envelope, parse_envelope

__all__ = ["Capture", "CaptureTransport", "otel_sentry_capture"]


class CaptureTransport(Transport):
    """A sentry_sdk transport that keeps envelopes (as the bytes Sentry would get, re-parsed)."""

    def __init__(self, capture: Capture) -> None:
        super().__init__()
        self._capture = capture

    def capture_envelope(self, envelope: SdkEnvelope) -> None:
        # Serialize and parse back, so tests see exactly what would go over the wire.
        self._capture._receive(parse_envelope(envelope.serialize()))

    def flush(self, timeout: float, callback: Any | None = None) -> None:
        return None

    def kill(self) -> None:
        return None


class Capture:
    """What the pipeline sent during a test, with helpers that read like the assertions you want."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._envelopes: list[Envelope] = []
        self.transport = CaptureTransport(self)

    def _receive(self, envelope: Envelope) -> None:
        with self._lock:
            self._envelopes.append(envelope)

    @property
    def envelopes(self) -> list[Envelope]:
        flush(5.0)  # spans are exported in batches: hand over whatever is pending first
        with self._lock:
            return list(self._envelopes)

    def payloads(self, item_type: str) -> list[dict[str, Any]]:
        return [p for env in self.envelopes for p in env.payloads(item_type)]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.payloads("event")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("exception")]

    @property
    def transactions(self) -> list[dict[str, Any]]:
        return self.payloads("transaction")

    def clear(self) -> None:
        flush(5.0)
        with self._lock:
            self._envelopes.clear()

    def one_error(self, exception_type: str | None = None) -> dict[str, Any]:
        """The single error event (of this exception type); fails listing what arrived instead."""
        errors = [
            e
            for e in self.errors
            if exception_type is None or _exception_types(e)[-1:] == [exception_type]
        ]
        assert len(errors) == 1, (
            f"expected exactly one error{f' of type {exception_type}' if exception_type else ''}, "
            f"got {len(errors)}; errors seen: {[_exception_types(e) for e in self.errors]}"
        )
        return errors[0]

    def transaction(self, name: str) -> dict[str, Any]:
        """The single transaction with this name; fails listing the names that did arrive."""
        found = [t for t in self.transactions if t.get("transaction") == name]
        assert len(found) == 1, (
            f"expected one transaction named {name!r}, got {len(found)}; "
            f"names seen: {[t.get('transaction') for t in self.transactions]}"
        )
        return found[0]

    def assert_linked(self, error: dict[str, Any], transaction: dict[str, Any]) -> None:
        """The error sits on the transaction's trace, on one of its spans."""
        err_trace = error.get("contexts", {}).get("trace", {})
        txn_trace = transaction.get("contexts", {}).get("trace", {})
        assert err_trace.get("trace_id") == txn_trace.get("trace_id"), (
            f"error trace {err_trace.get('trace_id')} != "
            f"transaction trace {txn_trace.get('trace_id')}"
        )
        span_ids = {txn_trace.get("span_id")} | {
            s.get("span_id") for s in transaction.get("spans", [])
        }
        assert err_trace.get("span_id") in span_ids, (
            f"error span {err_trace.get('span_id')} is not in the transaction "
            f"(spans: {sorted(map(str, span_ids))})"
        )


def _exception_types(event: dict[str, Any]) -> list[str]:
    return [str(v.get("type")) for v in event.get("exception", {}).get("values", [])]


@pytest.fixture
def otel_sentry_capture() -> Iterator[Capture]:
    """Capture what would be sent to Sentry during this test.

    If the code under test already called ``otel_sentry.init()``, its settings are kept and only
    the transport is replaced; otherwise ``init()`` runs from the environment for this test.
    """
    capture = Capture()
    previous = current_settings()
    client = sentry_sdk.get_client()
    if previous is not None and client.is_active() and client.transport is not None:
        old_transport = client.transport
        client.transport = capture.transport
        try:
            yield capture
        finally:
            flush(5.0)
            client.transport = old_transport
        return
    if previous is not None:
        shutdown()
    init(
        **(
            previous.as_options(transport=capture.transport)
            if previous
            else {"transport": capture.transport}
        )
    )
    try:
        yield capture
    finally:
        shutdown()
        if previous is not None:
            init(**previous.as_options())
