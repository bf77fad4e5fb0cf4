"""Many envelopes in flight to a distant ingest, over HTTP/2 and pooled HTTP/1.1.

The inbox plays Sentry one region away (``Fault(delay=...)``) and a server that closes
connections (``close_after``: HTTP/1.1 ``Connection: close``, HTTP/2 GOAWAY). What is asserted is
what reached it: every transaction once, sooner than one-at-a-time sending could manage, and no
loss reported.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.sentry.transport import EnvelopeTransport
from otel_sentry.inbox import Fault, Inbox

pytestmark = [pytest.mark.usefixtures("fresh"), pytest.mark.integration]


@pytest.fixture(params=["http1", "h2"])
def ingest(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """The inbox over plain HTTP/1.1, or over TLS offering h2 as Sentry's SaaS ingest does."""
    tls = request.param == "h2"
    with Inbox(tls=tls) as inbox:
        if tls:
            monkeypatch.setenv("SSL_CERT_FILE", str(inbox.ca_file))
        yield inbox


def _transport() -> EnvelopeTransport:
    transport = sentry_sdk.get_client().transport
    assert isinstance(transport, EnvelopeTransport)
    return transport


def _produce(n: int) -> None:
    tracer = trace.get_tracer("tests")
    for i in range(n):
        with tracer.start_as_current_span(f"job-{i}"):
            pass


def _names(inbox: Inbox) -> list[str]:
    return [t["transaction"] for t in inbox.transactions()]


def _lost(inbox: Inbox) -> int:
    return sum(
        q for (_, category), q in inbox.counts.discarded.items() if category == "transaction"
    )


def test_the_protocol_is_what_the_ingest_offers(ingest: Inbox) -> None:
    otel_sentry.init(dsn=ingest.dsn(), instrument=False)
    _produce(3)
    assert otel_sentry.flush(10)
    assert sorted(_names(ingest)) == ["job-0", "job-1", "job-2"]
    assert _transport().wire.protocol == ("h2" if ingest.tls else "http/1.1")
    assert ingest.problems == []


def test_a_distant_ingest_gets_many_envelopes_at_once(ingest: Inbox) -> None:
    # 400 envelopes at 150 ms each: 60 s one at a time, 15 s for four blocking senders.
    ingest.set_fault(Fault(delay=0.15))
    otel_sentry.init(dsn=ingest.dsn(), instrument=False)
    began = time.monotonic()
    _produce(400)
    assert otel_sentry.flush(30)
    took = time.monotonic() - began
    assert sorted(_names(ingest)) == sorted(f"job-{i}" for i in range(400))
    assert took < 8, f"400 envelopes took {took:.1f} s at 150 ms each"
    assert _lost(ingest) == 0
    wire = _transport().wire
    if ingest.tls:  # multiplexed: a connection carries up to 100 streams here
        assert wire.connections_opened <= 4
    else:
        assert wire.connections_opened > 4  # a pool, since HTTP/1.1 is one request at a time


@pytest.mark.parametrize("after", [1, 25])
def test_a_server_that_closes_connections_costs_nothing(ingest: Inbox, after: int) -> None:
    # nginx closes after keepalive_requests (HTTP/1.1) or sends GOAWAY (HTTP/2); every
    # envelope caught on a closing connection goes out again on a new one.
    ingest.set_fault(Fault(close_after=after, delay=0.02))
    otel_sentry.init(dsn=ingest.dsn(), instrument=False)
    _produce(300)
    assert otel_sentry.flush(30)
    names = _names(ingest)
    assert sorted(names) == sorted(f"job-{i}" for i in range(300))  # each exactly once
    assert _lost(ingest) == 0
    assert _transport().wire.connections_opened >= 300 // after
    assert ingest.problems == []


def test_an_answer_that_never_comes_is_given_up_and_kept(ingest: Inbox) -> None:
    ingest.set_fault(Fault(delay=5.0, remaining=1))
    otel_sentry.init(dsn=ingest.dsn(), instrument=False)
    transport = _transport()
    transport.wire.timeout = 0.5  # instead of sentry_sdk's 30 s
    _produce(1)
    # The answer is late: the envelope waits in the spool, and is sent again once Sentry answers.
    assert ingest.wait_for(lambda i: i.counts.faulted == 1, 5)
    assert otel_sentry.flush(15)
    assert "job-0" in _names(ingest)
    assert _lost(ingest) == 0
