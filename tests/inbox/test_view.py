"""The live view: what a person watching the inbox reads for real sentry_sdk data."""

from __future__ import annotations

import io
import re

import sentry_sdk

from otel_sentry.inbox import Echo, Inbox, encode_envelope, render
from otel_sentry.inbox.store import ReceivedEnvelope

from .conftest import sentry_client


def _checkout() -> None:
    with sentry_sdk.start_transaction(name="POST /checkout", op="http.server") as tx:
        tx.set_http_status(500)
        # Nested on purpose: the nesting is the span tree the view must draw.
        with sentry_sdk.start_span(op="db", name="SELECT * FROM carts"):  # noqa: SIM117
            with sentry_sdk.start_span(op="cache.get", name="cart:42"):
                pass
        with sentry_sdk.start_span(op="http.client", name="POST https://pay.example") as pay:
            pay.set_status("deadline_exceeded")
        sentry_sdk.add_breadcrumb(category="cart", message="loaded cart 42")
        try:
            _charge()
        except ZeroDivisionError:
            sentry_sdk.capture_exception()


def _charge() -> float:
    return 1 / 0


def test_echo_renders_a_real_error_and_transaction() -> None:
    stream = io.StringIO()
    with Inbox(echo=stream) as inbox:
        with sentry_client(inbox.dsn()) as client:
            _checkout()
            client.flush(5)
        inbox.wait_for_items("transaction")
        event_envelope, tx_envelope = inbox.envelopes
        event = inbox.events()[0]
        tx = inbox.transactions()[0]

    text = stream.getvalue()
    assert text == render(event_envelope) + render(tx_envelope)

    error = render(event_envelope)
    trace = event["contexts"]["trace"]
    assert "ERROR  ZeroDivisionError: division by zero" in error
    assert re.search(r"\n  at \S*test_view\.py:\d+ in _charge\n", error)
    assert re.search(r"\n     \S*test_view\.py:\d+ in _checkout\n", error)
    assert "transaction POST /checkout" in error
    assert f"trace {trace['trace_id']} span {trace['span_id']}" in error
    assert "breadcrumbs 1\n    [info] loaded cart 42" in error

    lines = render(tx_envelope).splitlines()
    assert re.match(
        r"TRANSACTION  POST /checkout  op=http.server status=internal_error \d+\.\dms", lines[1]
    )
    assert lines[2] == f"  trace {tx['contexts']['trace']['trace_id']}"
    assert re.match(r"    db  SELECT \* FROM carts  \d+\.\dms$", lines[3])
    assert re.match(r"      cache.get  cart:42  \d+\.\dms$", lines[4])
    assert re.match(
        r"    http.client  POST https://pay.example  \d+\.\dms  deadline_exceeded$", lines[5]
    )


def test_other_items_and_colour() -> None:
    body = encode_envelope(
        {"event_id": "d" * 32},
        [
            (
                {"type": "client_report"},
                {
                    "discarded_events": [
                        {"reason": "sample_rate", "category": "transaction", "quantity": 3}
                    ]
                },
            ),
            (
                {"type": "log"},
                {"items": [{"level": "error", "body": "card declined", "trace_id": "a" * 32}]},
            ),
            ({"type": "session"}, {"status": "exited", "errors": 0, "attrs": {"release": "1.0"}}),
            ({"type": "attachment", "filename": "dump.bin"}, b"\x00" * 10),
        ],
    )
    from otel_sentry.inbox import parse_envelope

    received = ReceivedEnvelope(parse_envelope(body), 0.0, 1, "/api/1/envelope/")
    text = render(received)
    assert "  discarded 3 transaction (sample_rate)" in text
    assert f"LOG error  card declined  trace {'a' * 32}" in text
    assert "session  status=exited errors=0 release=1.0" in text
    assert "attachment  10 bytes dump.bin" in text

    stream = io.StringIO()
    Echo(stream, color=True).envelope(received)
    assert "\033[31merror\033[0m" in stream.getvalue()
    assert "\033[" not in render(received, color=False)
