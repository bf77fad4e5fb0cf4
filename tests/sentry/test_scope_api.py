"""sentry_sdk's scope API under otel_sentry.init(): it reaches the transaction, and the trace
headers it renders are the current OpenTelemetry span's (sentry/scope_api.py)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
import sentry_sdk
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import otel_sentry
from otel_sentry.inbox import Inbox

pytestmark = pytest.mark.usefixtures("fresh")


def _request_span(path: str = "/orders/7") -> trace.Span:
    attributes = {"http.request.method": "GET", "url.path": path, "http.route": "/orders/{id}"}
    return trace.get_tracer("tests").start_span(
        f"GET {path}", kind=SpanKind.SERVER, attributes=attributes
    )


def test_sentry_sdk_tags_user_and_context_reach_the_transaction_and_the_error(
    inbox: Inbox,
) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    with trace.use_span(_request_span(), end_on_exit=True):
        sentry_sdk.set_tag("tenant", "acme")
        sentry_sdk.set_tags({"plan": "pro", "seats": 12})
        sentry_sdk.set_user({"id": "42", "username": "ada"})
        sentry_sdk.set_context("order", {"id": 7, "state": "paid"})
        sentry_sdk.capture_message("order failed")
    assert otel_sentry.flush(5)
    [event] = inbox.wait_for_items("event")
    [txn] = inbox.transactions()
    for payload in (event.json, txn):
        assert payload["tags"]["tenant"] == "acme" and payload["tags"]["plan"] == "pro"
        assert str(payload["tags"]["seats"]) == "12"  # Relay makes every tag a string
        assert payload["user"]["id"] == "42" and payload["user"]["username"] == "ada"
    assert event.json["contexts"]["order"] == {"id": 7, "state": "paid"}
    assert txn["contexts"]["trace"]["data"]["order.state"] == "paid"


def test_set_transaction_name_names_the_request_s_transaction(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    with trace.use_span(_request_span(), end_on_exit=True):
        sentry_sdk.set_transaction_name("checkout.confirm")
        sentry_sdk.capture_message("named")
    assert otel_sentry.flush(5)
    [event] = inbox.wait_for_items("event")
    [txn] = inbox.transactions()
    assert txn["transaction"] == "checkout.confirm"
    assert txn["transaction_info"]["source"] == "custom"
    assert event.json["transaction"] == "checkout.confirm"


def test_trace_headers_for_the_page_are_the_current_span_s(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    with trace.use_span(_request_span(), end_on_exit=True) as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
        span_id = f"{span.get_span_context().span_id:016x}"
        traceparent = sentry_sdk.get_traceparent()
        baggage = sentry_sdk.get_baggage()
        meta = sentry_sdk.get_current_scope().trace_propagation_meta()
    assert otel_sentry.flush(5)
    [txn] = inbox.transactions()
    assert txn["contexts"]["trace"]["trace_id"] == trace_id
    assert traceparent == f"{trace_id}-{span_id}-1"
    assert baggage is not None and f"sentry-trace_id={trace_id}" in baggage
    tags = dict(re.findall(r'<meta name="([^"]+)" content="([^"]+)">', meta))
    assert tags["sentry-trace"] == traceparent
    assert unquote(tags["baggage"]) == unquote(baggage)  # "/" quoted by one, not the other


def test_outside_a_span_sentry_sdk_answers_as_before_and_shutdown_restores_it(
    inbox: Inbox,
) -> None:
    original = sentry_sdk.set_tag
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    assert sentry_sdk.set_tag is not original
    outside = sentry_sdk.get_traceparent()  # sentry_sdk's propagation context
    assert outside is not None and re.fullmatch(r"[0-9a-f]{32}-[0-9a-f]{16}(-[01])?", outside)
    sentry_sdk.set_tag("no_span", "fine")  # nothing to mirror onto: no error
    otel_sentry.shutdown()
    assert sentry_sdk.set_tag is original
