"""Counting: keep_payloads=False keeps counters only, and the counters add up."""

from __future__ import annotations

import httpx

from otel_sentry.inbox import Inbox, encode_envelope

from .conftest import auth_header


def _transaction(n: int, spans: int) -> dict[str, object]:
    return {
        "type": "transaction",
        "transaction": f"t{n}",
        "start_timestamp": 1.0,
        "timestamp": "bad",  # invalid, but nobody validates when only counting
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}},
        "spans": [{"span_id": f"{i:016x}", "op": "db"} for i in range(spans)],
    }


def test_counts_only_mode_counts_everything_and_keeps_nothing(http: httpx.Client) -> None:
    report = {
        "discarded_events": [
            {"reason": "queue_overflow", "category": "transaction", "quantity": 2},
            {"reason": "sample_rate", "category": "span", "quantity": 5},
        ]
    }
    with Inbox(keep_payloads=False) as inbox:
        url = f"{inbox.url}/api/1/envelope/"
        headers = auth_header(inbox.public_key)
        for n in range(300):
            items: list[tuple[dict[str, object], object]] = [
                ({"type": "transaction"}, _transaction(n, 3)),
                ({"type": "client_report"}, report),
            ]
            if n % 100 == 0:
                items.append(({"type": "event"}, {"message": "e"}))
            body = encode_envelope({"event_id": f"{n:032x}"}, items)
            assert http.post(url, content=body, headers=headers).status_code == 200
        assert http.post(url, content=b"{oops", headers=headers).status_code == 400
        otlp = http.post(f"{inbox.url}/v1/traces", json={"resourceSpans": []})
        assert otlp.status_code == 200

        counts = inbox.counts
        assert inbox.envelopes == [] and inbox.items() == [] and inbox.otlp_spans() == []
        assert inbox.problems == []
        assert counts.requests == 302
        assert counts.envelopes == 300
        assert counts.items == {"transaction": 300, "client_report": 300, "event": 3}
        assert counts.categories == {
            "transaction": 300,
            "span": 300 * 4,
            "internal": 300,
            "error": 3,
        }
        assert counts.spans_in_transactions == 900
        assert counts.discarded == {
            ("queue_overflow", "transaction"): 600,
            ("sample_rate", "span"): 1500,
        }
        assert counts.rejected == {"parse": 1}
        assert counts.to_json()["discarded"][0] == {
            "reason": "queue_overflow",
            "category": "transaction",
            "quantity": 600,
        }
        assert inbox.wait_for(lambda i: i.counts.envelopes == 300, timeout=0.1)


def test_clear_resets_counts(inbox: Inbox, http: httpx.Client) -> None:
    body = encode_envelope({}, [({"type": "log", "item_count": 2}, {"items": [{}, {}]})])
    http.post(f"{inbox.url}/stream", content=body)
    assert inbox.counts.categories == {"log_item": 2}
    inbox.clear()
    assert inbox.counts.requests == 0 and inbox.envelopes == []
