"""EnvelopeTransport against the inbox: keep-alive, rate limits, send errors, restarts."""

from __future__ import annotations

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.sentry.transport import EnvelopeTransport
from otel_sentry.inbox import Fault, Inbox
from tests.support.servers import free_port

pytestmark = pytest.mark.usefixtures("fresh")


def _spans(n: int, name: str = "t") -> None:
    tracer = trace.get_tracer("tests")
    for _ in range(n):
        with tracer.start_as_current_span(name):
            pass


def test_it_is_the_default_and_reuses_its_connections(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    transport = sentry_sdk.get_client().transport
    assert isinstance(transport, EnvelopeTransport)
    _spans(200)
    otel_sentry.flush(10)
    inbox.wait_for_items("transaction", count=200, timeout=10)
    assert inbox.counts.requests == 200
    # Kept-alive connections, reused: not one per envelope. How many the pool opens follows the
    # round trip it measures, and this inbox shares the test's process (and a loaded machine's
    # cores): 61 were seen under two busy loops, 3-30 on a quiet machine.
    assert 1 <= transport.wire.connections_opened < 100
    assert inbox.problems == []


def test_a_rate_limited_category_waits_while_errors_go_on(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    inbox.set_fault(Fault(rate_limits="60:transaction:key", remaining=1))
    _spans(1, "first")  # answered with the limit: accepted, and transactions stop for 60 s
    otel_sentry.flush(5)
    inbox.wait_for_items("transaction")
    _spans(5, "limited")
    sentry_sdk.capture_message("errors are not limited")
    otel_sentry.flush(5)
    inbox.wait_for_items("event")
    assert [t["transaction"] for t in inbox.transactions()] == ["first"]
    assert inbox.wait_for(
        lambda i: i.counts.discarded.get(("ratelimit_backoff", "transaction")) == 5, 10
    )


def test_a_413_is_counted_as_send_error_and_sending_goes_on(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    inbox.set_fault(Fault(status=413, remaining=1))
    _spans(1, "too big")
    otel_sentry.flush(5)
    _spans(1, "fine")
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    assert item.json["transaction"] == "fine"
    assert inbox.wait_for(lambda i: i.counts.discarded.get(("send_error", "transaction")) == 1, 10)


def test_a_restarted_ingest_is_reconnected_to() -> None:
    inbox = Inbox(port=free_port()).start()  # a fixed port, so the DSN survives the restart
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    _spans(1, "before")
    otel_sentry.flush(5)
    inbox.wait_for_items("transaction")
    inbox.stop()  # the kept-alive connection is now dead
    inbox.start()
    _spans(1, "after")
    otel_sentry.flush(5)
    try:
        names = [i.json["transaction"] for i in inbox.wait_for_items("transaction", count=2)]
        assert names == ["before", "after"]
    finally:
        inbox.stop()


def test_a_refused_send_waits_and_arrives_once_sentry_answers(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    inbox.set_fault(Fault(refuse=True, remaining=2))  # the retry on a fresh connection too
    _spans(1, "first")
    otel_sentry.flush(0.5)
    _spans(1, "second")  # Sentry is known to be failing: this one waits without a try
    assert otel_sentry.flush(10)
    items = inbox.wait_for_items("transaction", count=2)
    assert sorted(i.json["transaction"] for i in items) == ["first", "second"]
    assert inbox.counts.faulted == 2  # one failed send and its retry: no hammering meanwhile
    assert ("network_error", "transaction") not in inbox.counts.discarded
