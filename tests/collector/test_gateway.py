"""otel_sentry/collector/gateway.yaml run for real: tail sampling keeps the error trace and the
slow trace and drops the fast ok one, at both backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_sentry.inbox import Inbox

from .process import SENTRY_KEY, Collector, otlp_span, post_spans

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(otelcol: Path) -> Iterator[tuple[Collector, Inbox, Inbox]]:
    with Inbox(port=0, public_key=SENTRY_KEY) as sentry, Inbox(port=0) as backend:
        env = {
            "SENTRY_OTLP_ENDPOINT": f"{sentry.url}/api/7/integration/otlp",
            "SENTRY_PUBLIC_KEY": SENTRY_KEY,
            "OTLP_BACKEND_ENDPOINT": backend.url,
            # Only errors and slow traces: the probabilistic share is 0 here.
            "TAIL_SAMPLING_PERCENTAGE": "0",
            "TAIL_SAMPLING_SLOW_MS": "1000",
            "TAIL_SAMPLING_DECISION_WAIT": "1s",
            "TAIL_SAMPLING_WAIT_AFTER_ROOT": "0s",
        }
        with Collector(otelcol, "gateway.yaml", env) as collector:
            yield collector, sentry, backend


def _wait_for_traces(collector: Collector, inboxes: tuple[Inbox, ...], trace_ids: set[str]) -> None:
    for inbox in inboxes:
        arrived = inbox.wait_for(
            lambda box: trace_ids <= {s["trace_id"] for s in box.otlp_spans()}, timeout=20
        )
        assert arrived, (inbox.counts.summary(), collector.log()[-3000:])


def test_tail_sampling_keeps_errors_and_slow_traces_and_drops_the_rest(
    gateway: tuple[Collector, Inbox, Inbox],
) -> None:
    collector, sentry, backend = gateway
    now = time.time_ns()
    ok = otlp_span("GET /fast", now, now + 20_000_000)
    failed = otlp_span("GET /broken", now, now + 20_000_000, error=True)
    slow = otlp_span("GET /slow", now, now + 1_500_000_000)
    post_spans(collector, [ok, failed, slow], service="gateway-test")

    kept = {failed["traceId"], slow["traceId"]}
    _wait_for_traces(collector, (sentry, backend), kept)
    # The ok trace was decided on the same tick as the other two, and had it been kept, it
    # would be on its way with them. A kept trace sent now is decided on a later tick and goes
    # out behind it: once that one has arrived, the ok trace would have too.
    now = time.time_ns()
    later = otlp_span("GET /broken-later", now, now + 20_000_000, error=True)
    post_spans(collector, [later], service="gateway-test")
    kept.add(later["traceId"])
    _wait_for_traces(collector, (sentry, backend), kept)
    for inbox in (sentry, backend):
        assert {s["trace_id"] for s in inbox.otlp_spans()} == kept
    assert {s["path"] for s in sentry.otlp_spans()} == {"/api/7/integration/otlp/v1/traces"}
    assert "deprecated" not in collector.log(), collector.log()
