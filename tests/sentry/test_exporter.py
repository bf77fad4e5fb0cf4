"""Transactions and client reports as they reach the inbox, in both export modes."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import set_span_in_context

import otel_sentry
from otel_sentry.inbox import Inbox

pytestmark = pytest.mark.usefixtures("fresh")


def _tracer() -> trace.Tracer:
    return trace.get_tracer("tests")


def test_transaction_carries_resource_dsc_and_no_internal_attributes(inbox: Inbox) -> None:
    otel_sentry.init(
        dsn=inbox.dsn(), instrument=False, release="svc@2", environment="qa", service_name="svc"
    )
    with _tracer().start_as_current_span(
        "GET /orders/{id}",
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.route": "/orders/{id}",
            "url.path": "/orders/9",
        },
    ):
        pass
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    txn = item.json
    assert txn["transaction"] == "GET /orders/{id}"
    assert txn["contexts"]["otel"]["resource"]["service.name"] == "svc"
    assert txn["contexts"]["otel"]["resource"]["service.version"] == "svc@2"
    assert txn["contexts"]["otel"]["resource"]["deployment.environment.name"] == "qa"
    dsc = item.envelope.envelope.headers["trace"]
    assert dsc["public_key"] == inbox.public_key
    assert dsc["release"] == "svc@2" and dsc["environment"] == "qa"
    assert dsc["transaction"] == "GET /orders/{id}"  # a route: low cardinality, may travel
    assert dsc["sampled"] == "true" and dsc["sample_rate"] == "1"
    assert 0 <= float(dsc["sample_rand"]) < 1
    assert item.envelope.envelope.headers["sdk"]["name"] == "sentry.python.otel_sentry"
    assert inbox.problems == []


def test_url_named_transactions_keep_their_name_out_of_the_dsc(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    with _tracer().start_as_current_span(
        "GET",
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": "GET", "url.path": "/users/8812/avatar"},
    ):
        pass
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    assert item.json["transaction_info"]["source"] == "url"
    assert "transaction" not in item.envelope.envelope.headers["trace"]


def test_unsampled_roots_are_reported_as_sample_rate_drops(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, traces_sample_rate=0.0)
    for _ in range(25):
        with _tracer().start_as_current_span("dropped") as span:
            assert not span.is_recording()
    otel_sentry.flush(5)
    assert inbox.wait_for(
        lambda i: i.counts.discarded.get(("sample_rate", "transaction")) == 25, 10
    )
    assert inbox.transactions() == []


def test_spans_over_the_cap_are_counted_as_buffer_overflow(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    with _tracer().start_as_current_span("big"):
        for i in range(1_010):
            with _tracer().start_as_current_span(f"step {i}"):
                pass
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    assert len(item.json["spans"]) == 1_000
    assert inbox.wait_for(lambda i: i.counts.discarded.get(("buffer_overflow", "span")) == 10, 10)


def test_before_send_transaction_can_edit_and_drop(inbox: Inbox) -> None:
    def hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        if event["transaction"] == "secret":
            return None
        event["tags"] = {"edited": "yes"}
        return event

    otel_sentry.init(dsn=inbox.dsn(), instrument=False, before_send_transaction=hook)
    for name in ("secret", "public"):
        with _tracer().start_as_current_span(name):
            pass
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    assert item.json["transaction"] == "public" and item.json["tags"] == {"edited": "yes"}
    assert inbox.wait_for(lambda i: i.counts.discarded.get(("before_send", "transaction")) == 1, 10)


def test_a_hook_editing_one_transactions_resource_leaves_the_next_alone(inbox: Inbox) -> None:
    # The resource context is converted once per process and shared; a before_send_transaction
    # that edits it in place must edit its own transaction only.
    def hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        if event["transaction"] == "first":
            event["contexts"]["otel"]["resource"].pop("service.name")
        return event

    otel_sentry.init(
        dsn=inbox.dsn(), instrument=False, service_name="svc", before_send_transaction=hook
    )
    for name in ("first", "second"):
        with _tracer().start_as_current_span(name):
            pass
        otel_sentry.flush(5)
    items = inbox.wait_for_items("transaction", count=2)
    resources = {i.json["transaction"]: i.json["contexts"]["otel"]["resource"] for i in items}
    assert "service.name" not in resources["first"]
    assert resources["second"]["service.name"] == "svc"


def test_late_children_arrive_on_the_same_trace(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    tracer = _tracer()
    root = tracer.start_span("request")
    background = tracer.start_span("background write", context=set_span_in_context(root))
    root.end()
    otel_sentry.flush(5)
    background.end()
    otel_sentry.flush(5)
    items = inbox.wait_for_items("transaction", count=2)
    by_name = {i.json["transaction"]: i.json for i in items}
    late = by_name["background write"]
    assert late["tags"]["otel_sentry.segment"] == "late"
    assert (
        late["contexts"]["trace"]["trace_id"] == by_name["request"]["contexts"]["trace"]["trace_id"]
    )
    assert (
        late["contexts"]["trace"]["parent_span_id"]
        == by_name["request"]["contexts"]["trace"]["span_id"]
    )


def test_otlp_mode_sends_to_sentrys_otlp_endpoint_with_auth(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, export="otlp", service_name="otlp-svc")
    with _tracer().start_as_current_span("via otlp"), _tracer().start_as_current_span("child"):
        pass
    otel_sentry.flush(5)
    spans = inbox.wait_for_otlp_spans(count=2)
    assert {s["name"] for s in spans} == {"via otlp", "child"}
    assert inbox.transactions() == []  # otlp only: nothing went the envelope way
    assert all(s["resource"]["service.name"] == "otlp-svc" for s in spans)


def test_both_modes_and_a_generic_otlp_endpoint(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", inbox.url)  # base URL: /v1/traces appended
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, export="both")
    with _tracer().start_as_current_span("twice"):
        pass
    otel_sentry.flush(5)
    [otlp] = inbox.wait_for_otlp_spans(count=1)
    [item] = inbox.wait_for_items("transaction")
    assert otlp["name"] == item.json["transaction"] == "twice"
    assert otlp["trace_id"] == item.json["contexts"]["trace"]["trace_id"]


def test_a_full_export_queue_reports_the_transactions_it_drops(inbox: Inbox) -> None:
    from otel_sentry._internal import pipeline
    from otel_sentry._internal.sentry.span_processor import TransactionExporter

    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    [exporter] = [t for t in pipeline.switchboard.targets if isinstance(t, TransactionExporter)]
    exporter._max_queue = 5  # the worker drains it every 0.5 s; 40 spans end within a few ms
    for i in range(40):
        with _tracer().start_as_current_span(f"job-{i}"):
            pass
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: ("queue_overflow", "transaction") in i.counts.discarded, 10)
    dropped = inbox.counts.discarded[("queue_overflow", "transaction")]
    assert dropped > 0
    assert len(inbox.transactions()) + dropped == 40
    assert inbox.counts.discarded[("queue_overflow", "span")] == dropped  # no children here
