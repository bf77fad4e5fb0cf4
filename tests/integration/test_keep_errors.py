"""``keep_error_traces``: at head rate 0.1 every failing request's transaction still arrives.

A FastAPI service (tests/support/keep_errors_app.py) under uvicorn in its own process takes 200
requests, 20 of them failing: 10 answer 500, 10 catch their error and report it with
``capture_exception``. What is asserted is what reaches Sentry (the inbox): every error event
points at a transaction that arrived, with its child span; the ok requests arrive at about the
head's rate; the weights (the DSC's ``sample_rate``) make Sentry's extrapolated counts honest;
everything else is accounted for in client reports, and release health counts every request once.
"""

from __future__ import annotations

import math

import pytest

from otel_sentry.inbox import Inbox
from tests.integration.launched import Launched

pytestmark = pytest.mark.integration

RELEASE = "keep@1.0"
UVICORN = ["python", "-m", "uvicorn", "tests.support.keep_errors_app:app", "--port", "{port}"]


def _drive(server: Launched) -> dict[str, int]:
    sent = {"/ok": 0, "/fail": 0, "/handled": 0}
    for i in range(200):
        path = "/fail" if i % 20 == 4 else "/handled" if i % 20 == 14 else "/ok"
        status, _ = server.request("GET", path)
        assert status == (500 if path == "/fail" else 200)
        sent[path] += 1
    return sent


def _run(inbox: Inbox, **env: str) -> None:
    environment = {
        "SENTRY_DSN": inbox.dsn(),
        "SENTRY_RELEASE": RELEASE,
        "SENTRY_TRACES_SAMPLE_RATE": "0.1",
        "OTEL_SENTRY_INSTRUMENT": "fastapi",
        **env,
    }
    with Launched(UVICORN, environment, probe="/health") as server:
        assert _drive(server) == {"/ok": 180, "/fail": 10, "/handled": 10}
        server.terminate()  # SIGTERM: what is held and queued is sent before exit
    # Every request is a transaction that arrived or was reported as sampled out, and its
    # session; all sent before the process exited.
    assert inbox.wait_for(
        lambda i: (
            len(i.transactions()) + i.counts.discarded.get(("sample_rate", "transaction"), 0)
            == 200 + 1  # the readiness probe: health checks are sampled out (noise rules)
            and sum(_sessions(i).values()) == 200
        ),
        timeout=20,
    ), (inbox.counts.summary(), inbox.counts.discarded, _sessions(inbox))


def _dsc(inbox: Inbox) -> dict[str, dict[str, str]]:
    """Each transaction's envelope DSC, by event id."""
    return {
        item.json["event_id"]: item.envelope.envelope.headers["trace"]
        for item in inbox.items("transaction")
    }


def _sessions(inbox: Inbox) -> dict[str, int]:
    out = {"exited": 0, "errored": 0, "crashed": 0}
    for item in inbox.items("sessions"):
        for aggregate in item.json["aggregates"]:
            for key in out:
                out[key] += aggregate.get(key, 0)
    return out


def test_every_failing_request_keeps_its_transaction_at_head_rate_0_1(inbox: Inbox) -> None:
    _run(inbox, OTEL_SENTRY_KEEP_ERROR_TRACES="true")
    events = inbox.events()
    assert len(events) == 20, [e.get("exception", {}) for e in events]
    transactions = {t["contexts"]["trace"]["trace_id"]: t for t in inbox.transactions()}
    dsc = _dsc(inbox)

    failing: set[str] = set()
    for event in events:
        link = event["contexts"]["trace"]
        txn = transactions.get(link["trace_id"])
        assert txn is not None, f"the error {event.get('exception')} points at no transaction"
        span_ids = {txn["contexts"]["trace"]["span_id"]} | {s["span_id"] for s in txn["spans"]}
        assert link["span_id"] in span_ids  # the span it happened in, inside the transaction
        assert [s["description"] for s in txn["spans"]] == ["load item"]
        failing.add(link["trace_id"])
        # Kept with probability 1: it counts once when Sentry extrapolates.
        header = dsc[txn["event_id"]]
        assert (header["sample_rate"], header["sampled"]) == ("1.0", "true")
        head_sampled = float(header["sample_rand"]) < 0.1
        assert (txn.get("tags", {}).get("otel_sentry.kept_for") == "error") is not head_sampled
    assert {transactions[t]["transaction"] for t in failing} == {"GET /fail", "GET /handled"}

    ok = [t for trace_id, t in transactions.items() if trace_id not in failing]
    assert {t["transaction"] for t in ok} <= {"GET /ok"}
    # Binomial(180, 0.1): within 3 sigma of 18.
    assert abs(len(ok) - 18) <= 3 * math.sqrt(180 * 0.1 * 0.9), len(ok)
    for txn in ok:
        header = dsc[txn["event_id"]]
        assert header["sample_rate"] == "0.1" and float(header["sample_rand"]) < 0.1
        assert "otel_sentry.kept_for" not in txn.get("tags", {})

    # Nothing lost silently: every ok request not sent is reported as sampled out, with its
    # spans (the server span and its child), beside the readiness probe's one span.
    dropped = 180 - len(ok)
    assert inbox.counts.discarded.get(("sample_rate", "transaction")) == dropped + 1
    assert inbox.counts.discarded.get(("sample_rate", "span")) == 2 * dropped + 1
    # Extrapolated as Sentry does (1 / sample_rate each): the 200 requests and their 10% failures
    # up to the ok requests' sampling noise, and the failures exactly.
    weights = [1 / float(dsc[t["event_id"]]["sample_rate"]) for t in transactions.values()]
    assert sum(1 / float(dsc[transactions[t]["event_id"]]["sample_rate"]) for t in failing) == 20
    assert abs(sum(weights) - 200) <= 10 * 3 * math.sqrt(180 * 0.1 * 0.9)
    # Release health counted each request once (recorded, not sampled, requests included).
    assert _sessions(inbox) == {"exited": 180, "errored": 10, "crashed": 10}


def test_without_it_only_the_head_sampled_failures_have_a_transaction(inbox: Inbox) -> None:
    _run(inbox)
    events = inbox.items("event")
    assert len(events) == 20
    traces = {t["contexts"]["trace"]["trace_id"] for t in inbox.transactions()}
    linked = [e for e in events if e.json["contexts"]["trace"]["trace_id"] in traces]
    sampled = [e for e in events if e.envelope.envelope.headers["trace"]["sampled"] == "true"]
    # Exactly the errors whose trace the head kept have one: the gap the option closes.
    assert len(linked) == len(sampled) < 20
    assert _sessions(inbox) == {"exited": 180, "errored": 10, "crashed": 10}


def test_the_kept_failures_also_go_out_over_otlp_marked_for_the_collector(inbox: Inbox) -> None:
    # export=both: the OTLP side (here the same inbox's OTLP endpoint) gets the head-sampled
    # traces as always, and the failing ones kept in-process as sampled spans that say so, for
    # a gateway's tail sampling (collector/README.md) to keep as well.
    _run(
        inbox,
        OTEL_SENTRY_KEEP_ERROR_TRACES="true",
        OTEL_SENTRY_EXPORT="both",
        OTEL_EXPORTER_OTLP_ENDPOINT=inbox.url,
    )
    kept = {
        t["contexts"]["trace"]["trace_id"]
        for t in inbox.transactions()
        if t.get("tags", {}).get("otel_sentry.kept_for") == "error"
    }
    assert kept  # at 0.1, about 18 of the 20 failures were kept for their error alone

    def otlp_has_them(i: Inbox) -> bool:
        return kept <= {s["trace_id"] for s in i.otlp_spans()}

    assert inbox.wait_for(otlp_has_them, timeout=20), inbox.counts.summary()
    for span in inbox.otlp_spans():
        marked = span["attributes"].get("otel_sentry.keep_trace") is True
        assert marked is (span["trace_id"] in kept), span["name"]
    assert {s["name"] for s in inbox.otlp_spans() if s["trace_id"] in kept} == {
        "GET /fail",
        "GET /handled",
        "load item",
    }
