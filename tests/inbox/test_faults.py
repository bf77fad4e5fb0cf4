"""Fault injection as a real sentry_sdk client experiences it, and as raw HTTP shows it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import sentry_sdk

from otel_sentry.inbox import Fault, Inbox, encode_envelope

from .conftest import sentry_client


def _messages(inbox: Inbox) -> list[str]:
    return [e["message"] for e in inbox.events()]


@pytest.mark.parametrize(
    ("fault", "events", "transactions", "discarded", "requests"),
    [
        pytest.param(
            Fault(status=200, rate_limits="60:transaction:key", remaining=1),
            ["A", "B"],
            [],
            {("ratelimit_backoff", "transaction"): 1, ("ratelimit_backoff", "span"): 1},
            3,  # A, B, the client report: the transaction was never sent
            id="rate limits on a 200 stop that category only",
        ),
        pytest.param(
            Fault(status=429, rate_limits="60:error:key", remaining=1),
            [],
            ["C"],
            {("ratelimit_backoff", "error"): 1},
            3,
            id="429 with categories",
        ),
        pytest.param(
            Fault(status=429, retry_after=60, remaining=1),
            [],
            [],
            {},  # the client report is held back too: Retry-After limits everything
            1,
            id="429 with Retry-After stops everything",
        ),
        pytest.param(
            Fault(status=500, remaining=1),
            ["B"],
            ["C"],
            {("network_error", "error"): 1},
            4,
            id="500 drops one envelope",
        ),
        pytest.param(
            Fault(status=413, remaining=1),
            ["B"],
            ["C"],
            {("send_error", "error"): 1},
            4,
            id="413 is a send error",
        ),
        pytest.param(
            Fault(refuse=True, remaining=1),
            ["B"],
            ["C"],
            {("network_error", "error"): 1},
            4,
            id="refused connection",
        ),
    ],
)
def test_sentry_sdk_reacts_to_faults(
    inbox: Inbox,
    fault: Fault,
    events: list[str],
    transactions: list[str],
    discarded: dict[tuple[str, str], int],
    requests: int,
) -> None:
    inbox.set_fault(fault)
    with sentry_client(inbox.dsn()) as client:
        sentry_sdk.capture_message("A", level="error")
        client.flush(5)
        sentry_sdk.capture_message("B", level="error")
        with sentry_sdk.start_transaction(name="C"):
            pass
        client.flush(5)
    counts = inbox.counts
    assert _messages(inbox) == events
    assert [t["transaction"] for t in inbox.transactions()] == transactions
    assert counts.discarded == discarded
    assert counts.requests == requests
    assert counts.faulted == 1
    assert inbox.fault is None  # remaining=1 was used up
    assert inbox.problems == []


@pytest.fixture
def envelope() -> bytes:
    return encode_envelope({"event_id": "c" * 32}, [({"type": "event"}, {"message": "m"})])


def test_fault_headers_status_and_remaining(
    inbox: Inbox, send_envelope: Callable[..., httpx.Response], envelope: bytes
) -> None:
    inbox.set_fault(Fault(status=429, rate_limits="30::organization", retry_after=1.5, remaining=2))
    for _ in range(2):
        response = send_envelope(envelope)
        assert response.status_code == 429
        assert response.headers["x-sentry-rate-limits"] == "30::organization"
        assert response.headers["retry-after"] == "2"
    assert inbox.envelopes == []
    assert send_envelope(envelope).status_code == 200
    assert inbox.counts.faulted == 2
    assert len(inbox.envelopes) == 1


def test_fault_applies_to_otlp_and_clears(inbox: Inbox, http: httpx.Client) -> None:
    inbox.set_fault(Fault(status=503))
    url = f"{inbox.url}/v1/traces"
    json_headers = {"Content-Type": "application/json"}
    assert http.post(url, content=b"{}", headers=json_headers).status_code == 503
    assert http.post(url, content=b"{}", headers=json_headers).status_code == 503
    inbox.clear_fault()
    assert http.post(url, content=b"{}", headers=json_headers).status_code == 200
    assert inbox.counts.faulted == 2


def test_delay_and_refuse(
    inbox: Inbox, send_envelope: Callable[..., httpx.Response], envelope: bytes
) -> None:
    inbox.set_fault(Fault(delay=0.2, remaining=1))
    started = time.monotonic()
    assert send_envelope(envelope).status_code == 200
    assert time.monotonic() - started >= 0.2
    inbox.set_fault(Fault(refuse=True, remaining=1))
    with pytest.raises(httpx.RemoteProtocolError):
        send_envelope(envelope)
    assert len(inbox.envelopes) == 1
    assert inbox.counts.faulted == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"status": 42}, "Fault.status must be an HTTP status"),
        ({"delay": -1}, "Fault.delay must be >= 0"),
        ({"remaining": 0}, "Fault.remaining must be >= 1"),
        ({"close_after": 0}, "Fault.close_after must be >= 1"),
        ({"stauts": 429}, "unknown fault field(s) ['stauts']"),
    ],
)
def test_invalid_faults_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        Fault.from_json(data)
