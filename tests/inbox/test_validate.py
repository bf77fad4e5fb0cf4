"""Validation: Relay's normalizer and the envelope rules flag what Sentry would not take cleanly."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import sentry_sdk

from otel_sentry.inbox import Inbox, encode_envelope

from .conftest import sentry_client

TRACE = {"trace_id": "a" * 32, "span_id": "b" * 16, "op": "http.server"}
DSC = {
    "trace_id": "a" * 32,
    "public_key": "k",
    "sample_rate": "0.5",
    "sample_rand": "0.25",
    "sampled": "true",
}


def _tx(**overrides: Any) -> dict[str, Any]:
    now = time.time()
    tx = {
        "type": "transaction",
        "event_id": "e" * 32,
        "transaction": "GET /",
        "start_timestamp": now - 1,
        "timestamp": now,
        "contexts": {"trace": TRACE},
        "spans": [],
    }
    return {**tx, **overrides}


@pytest.mark.parametrize(
    ("headers", "items", "expected"),
    [
        pytest.param(
            {"trace": DSC},
            [({"type": "transaction"}, _tx(timestamp="bad"))],
            [
                f"transaction {'e' * 32}: timestamp: invalid_data "
                "(input contains invalid characters), value 'bad'"
            ],
            id="relay: unparsable timestamp",
        ),
        pytest.param(
            {},
            [
                (
                    {"type": "transaction"},
                    _tx(start_timestamp=time.time() + 86400, timestamp=time.time() + 86401),
                )
            ],
            ["timestamp: future_timestamp"],
            id="relay: timestamp in the future",
        ),
        pytest.param(
            {},
            [({"type": "event"}, {"event_id": "f" * 32, "level": "loud", "message": "x"})],
            [f"event {'f' * 32}: level: invalid_data (invalid level), value 'loud'"],
            id="relay: bad level",
        ),
        pytest.param(
            {},
            [
                (
                    {"type": "transaction"},
                    _tx(
                        spans=[
                            {
                                "span_id": "c" * 16,
                                "op": "db",
                                "start_timestamp": 1.0,
                                "timestamp": 2.0,
                            }
                        ]
                    ),
                )
            ],
            ["Relay rejects it: invalid transaction event: span is missing trace_id"],
            id="relay: transaction it drops",
        ),
        pytest.param(
            {"trace": {**DSC, "sampled": "false"}},
            [({"type": "transaction"}, _tx())],
            ["sampled=false contradicts sample_rand 0.25 < sample_rate 0.5"],
            id="DSC decision contradicts sample_rand",
        ),
        pytest.param(
            {"trace": {**DSC, "trace_id": "c" * 32}},
            [({"type": "transaction"}, _tx())],
            ["differs from the envelope's DSC trace_id"],
            id="error off its trace",
        ),
        pytest.param(
            {"trace": {"trace_id": "a" * 32}},
            [],
            ["public_key is missing"],
            id="DSC without public key",
        ),
        pytest.param(
            {},
            [({"type": "event"}, {"message": "1"}), ({"type": "event"}, {"message": "2"})],
            ["2 event/transaction items; Sentry accepts at most one per envelope"],
            id="two events in one envelope",
        ),
        pytest.param(
            {},
            [
                (
                    {"type": "log", "item_count": 3},
                    {
                        "items": [
                            {
                                "level": "info",
                                "body": "b",
                                "timestamp": 1.0,
                                "trace_id": "a" * 32,
                                "attributes": {"n": 1},
                            }
                        ]
                    },
                )
            ],
            [
                "item_count header says 3 but the payload holds 1",
                "attribute 'n' must be {'value', 'type'}",
            ],
            id="log container",
        ),
        pytest.param(
            {},
            [
                (
                    {"type": "client_report"},
                    {"discarded_events": [{"reason": "x", "category": "error", "quantity": -1}]},
                )
            ],
            ["needs reason, category, quantity >= 0"],
            id="client report",
        ),
    ],
)
def test_problems_are_flagged(
    inbox: Inbox,
    http: httpx.Client,
    headers: dict[str, Any],
    items: list[tuple[dict[str, Any], Any]],
    expected: list[str],
) -> None:
    response = http.post(f"{inbox.url}/stream", content=encode_envelope(headers, items))
    assert response.status_code == 200  # Sentry would take the envelope; the data is the issue
    problems = inbox.problems
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


def test_valid_data_from_sentry_sdk_has_no_problems(inbox: Inbox) -> None:
    with sentry_client(inbox.dsn(), release="2.0", environment="test") as client:
        with sentry_sdk.start_transaction(name="GET /ok", op="http.server"):
            with sentry_sdk.start_span(op="db", name="SELECT 1"):
                pass
            sentry_sdk.add_breadcrumb(category="auth", message="login")
            try:
                int("not a number")
            except ValueError:
                sentry_sdk.capture_exception()
        sentry_sdk.capture_message("outside any transaction")
        client.flush(5)
    inbox.wait_for_items("event", 2)
    assert len(inbox.transactions()) == 1
    assert inbox.problems == []


def test_validation_can_be_switched_off(http: httpx.Client) -> None:
    with Inbox(validate=False) as inbox:
        body = encode_envelope({}, [({"type": "transaction"}, _tx(timestamp="bad"))])
        assert http.post(f"{inbox.url}/stream", content=body).status_code == 200
        assert inbox.problems == []
        assert len(inbox.transactions()) == 1


def test_trims_the_sdk_declared_are_not_problems_but_undeclared_ones_are() -> None:
    from otel_sentry.inbox.validate import _declared_trims, _relay_findings

    normalized = {
        "_meta": {
            "extra": {"sys.argv": {"": {"len": 14}}},
            "message": {"": {"len": 20000}},
        }
    }
    raw = b'{"_meta": {"extra": {"sys.argv": {"": {"len": 14}}}}}'
    findings = _relay_findings(normalized, _declared_trims(raw))
    assert findings == ["message: trimmed by Relay (original length 20000)"]
