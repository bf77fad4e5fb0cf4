"""The example app against a Sentry that is down, failing, slow or rate limiting.

The app runs under uvicorn in its own process, pointed at the inbox; the inbox's fault modes
play the broken Sentry. What is asserted is what a user would see: the app's answers while
Sentry is broken, and what reached Sentry once it was back.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from otel_sentry._internal.sentry.spool import read_file
from otel_sentry._internal.sentry.wire.pool import MAX_ATTEMPTS
from otel_sentry.inbox import Fault, Inbox
from tests.support.example_app import App

pytestmark = pytest.mark.integration


@pytest.fixture
def apps() -> Iterator[list[App]]:
    started: list[App] = []
    yield started
    for app in started:
        if app.proc is not None and app.proc.poll() is None:
            app.stop(signal.SIGKILL)


def _traffic(app: App, n: int) -> list[tuple[int, float]]:
    """n item reads and one failing checkout per 10, as a user would send them."""
    answers = []
    for i in range(n):
        answers.append(app.get("GET", "/items/1"))
        if i % 10 == 9:
            answers.append(app.get("POST", "/checkout/2"))
    return answers


def _probes(seconds: float) -> int:
    """Probes the breaker may have sent ``seconds`` after it opened: one after 1 s, then after
    a backoff that doubles (2 s, 4 s...), so by 1, 3, 7... s."""
    return sum(1 for k in range(1, 16) if 2**k - 1 <= seconds)


def _transactions(inbox: Inbox, name: str) -> list[dict[str, Any]]:
    return [t for t in inbox.transactions() if t.get("transaction") == name]


def _spooled(spool: Path) -> Counter[str]:
    """The transactions and errors in a spool directory's files, by type, each counted once."""
    found: dict[str, str] = {}
    for path in spool.rglob("*.env"):
        envelope = read_file(path)  # None if it moved or went meanwhile: found on a later look
        for item in envelope.items if envelope is not None else ():
            event = item.payload.json  # parsed for transactions and errors
            if item.type in ("transaction", "event") and isinstance(event, dict):
                found[event["event_id"]] = item.type
    return Counter(found.values())


@pytest.mark.parametrize(
    "fault",
    [Fault(refuse=True), Fault(status=500), Fault(status=503)],
    ids=["connection-closed", "status-500", "status-503"],
)
def test_an_outage_costs_the_app_nothing_and_loses_nothing(
    inbox: Inbox, apps: list[App], fault: Fault
) -> None:
    app = App(inbox.dsn()).start()
    apps.append(app)
    inbox.set_fault(fault)
    # One request meets the outage first: its envelope is tried once, or on a new connection a
    # few times when the connection closes unanswered; then the breaker opens.
    tries = MAX_ATTEMPTS if fault.refuse else 1
    answers = [app.get("GET", "/items/1")]
    assert inbox.wait_for(lambda i: i.counts.faulted >= tries, timeout=10), inbox.counts.summary()
    opened = time.monotonic()
    before = inbox.counts.faulted
    answers += _traffic(app, 30)
    traffic_done = time.monotonic()
    # The app answered as it always does: the outage never reaches a request.
    assert sorted({status for status, _ in answers}) == [200, 500]
    assert sum(1 for status, _ in answers if status == 500) == 3
    # ...and the sends back off. 33 more envelopes; sent anyway, they would be 33 attempts or
    # more. Backing off, only a probe per backoff (1 s, then 2 s, ...) reaches Sentry: watched
    # until 1.5 s after the traffic, or until that is broken.
    inbox.wait_for(
        lambda i: (
            i.counts.faulted - before > tries * _probes(time.monotonic() - opened)
            or i.counts.items.get("transaction", 0) > 0
        ),
        timeout=max(0.0, 1.5 - (time.monotonic() - traffic_done)),
    )
    assert inbox.counts.items.get("transaction", 0) == 0  # nothing got through meanwhile
    attempts = inbox.counts.faulted - before
    probes = _probes(time.monotonic() - opened)
    assert attempts <= tries * probes, (
        f"{attempts} sends to a failing Sentry after the first failed ({probes} probe(s) due):"
        " it should back off"
    )

    inbox.clear_fault()
    recovered = datetime.now(timezone.utc)
    inbox.wait_for(
        lambda i: (
            len(_transactions(i, "GET /items/{item_id}")) == 31
            and len(_transactions(i, "POST /checkout/{item_id}")) == 3
            and len(i.events()) == 3
        ),
        timeout=30,
    )
    assert app.stop() < 10
    assert ("network_error", "transaction") not in inbox.counts.discarded
    assert ("network_error", "error") not in inbox.counts.discarded
    # Replayed envelopes say when they were really sent: Relay would shift their timestamps
    # by the outage otherwise.
    sent = [
        datetime.fromisoformat(e.envelope.headers["sent_at"].replace("Z", "+00:00"))
        for e in inbox.envelopes
        if any(item.type in ("transaction", "event") for item in e.envelope.items)
    ]
    assert len(sent) == 37
    assert min(sent) >= recovered - timedelta(seconds=1)


def test_a_slow_sentry_does_not_slow_requests(inbox: Inbox, apps: list[App]) -> None:
    app = App(inbox.dsn()).start()
    apps.append(app)
    inbox.set_fault(Fault(delay=3.0))
    answers = _traffic(app, 20)
    # Each send takes 3 s: any request that waited for one would take that long.
    assert max(seconds for _, seconds in answers) < 2.0, answers
    inbox.clear_fault()
    assert inbox.wait_for(
        lambda i: len(_transactions(i, "GET /items/{item_id}")) == 20 and len(i.events()) == 2,
        timeout=60,
    ), inbox


def test_a_rate_limited_category_waits_while_the_others_go_on(
    inbox: Inbox, apps: list[App]
) -> None:
    app = App(inbox.dsn()).start()
    apps.append(app)
    # One answer limits transactions for 60 s; errors are not limited.
    inbox.set_fault(Fault(status=429, rate_limits="60:transaction:organization", remaining=1))
    app.get("GET", "/items/1")
    inbox.wait_for(lambda i: i.counts.faulted == 1, timeout=10)
    requests_before = inbox.counts.requests
    for _ in range(5):
        app.get("GET", "/items/1")
    app.get("POST", "/checkout/2")
    [event] = inbox.wait_for_items("event", count=1, timeout=10)
    assert event.json["exception"]["values"][-1]["type"] == "CheckoutError"
    app.stop()
    # No transaction was sent while limited; the drops were reported.
    assert inbox.counts.items.get("transaction", 0) == 0
    assert inbox.counts.requests - requests_before <= 3  # the error and client reports
    assert inbox.wait_for(
        lambda i: i.counts.discarded.get(("ratelimit_backoff", "transaction"), 0) >= 6, 10
    ), inbox.counts.discarded


def test_a_disk_spool_survives_a_killed_process(
    inbox: Inbox, apps: list[App], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    first = App(inbox.dsn(), OTEL_SENTRY_SPOOL_DIR=str(spool)).start()
    apps.append(first)
    inbox.set_fault(Fault(refuse=True))
    _traffic(first, 20)
    deadline = time.monotonic() + 30
    # 20 item reads and 2 checkouts, and the checkouts' errors.
    while (on_disk := _spooled(spool)) != {"transaction": 22, "event": 2}:
        assert time.monotonic() < deadline, f"spooled after 30 s: {dict(on_disk)}"
        time.sleep(0.05)  # the export thread is still building and spooling them
    first.stop(signal.SIGKILL)  # no flush, no atexit: only what is on disk survives
    assert inbox.counts.items.get("transaction", 0) == 0
    assert any(spool.rglob("*.env")), "nothing was written to the spool"

    inbox.clear_fault()
    second = App(inbox.dsn(), OTEL_SENTRY_SPOOL_DIR=str(spool)).start()
    apps.append(second)
    assert inbox.wait_for(
        lambda i: len(_transactions(i, "GET /items/{item_id}")) == 20 and len(i.events()) == 2,
        timeout=30,
    ), inbox.counts.summary()
    second.stop()
    assert not any(spool.rglob("*.env")), "delivered envelopes must leave the spool"


def test_sigterm_while_sentry_is_down_exits_promptly(inbox: Inbox, apps: list[App]) -> None:
    app = App(inbox.dsn()).start()
    apps.append(app)
    inbox.set_fault(Fault(delay=20.0))  # every send hangs far longer than the flush timeout
    _traffic(app, 10)
    assert app.stop(timeout=30) < 15
