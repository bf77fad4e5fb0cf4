"""Load shedding: fewer new traces while the process falls behind, all of them again after.

Real event loops made late by real blocking work; the pipeline tests assert what reaches the
inbox (transactions, their sample rate, the ``backpressure`` client reports).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry import propagate, trace

import otel_sentry
from otel_sentry.inbox import Inbox
from otel_sentry.pressure import LoadShedder


async def _busy(seconds: float, block: float, until: asyncio.Event | None = None) -> None:
    """Keep the loop behind: each step holds it for ``block`` seconds, then yields once."""
    end = time.monotonic() + seconds
    while time.monotonic() < end or (until is not None and not until.is_set()):
        time.sleep(block)
        await asyncio.sleep(0)


def test_a_loop_that_falls_behind_sheds_then_recovers() -> None:
    shedder = LoadShedder()
    factors: dict[str, float] = {}

    async def main() -> None:
        shedder.watch_running_loop()
        await asyncio.sleep(0.3)
        factors["idle"] = shedder.factor
        await _busy(0.3, block=0.12)  # behind, but worked off within half a second
        factors["short burst"] = shedder.factor
        await asyncio.sleep(0.5)
        await _busy(2.0, block=0.12)  # behind for longer: falling behind
        factors["behind"] = shedder.factor
        await asyncio.sleep(2.5)
        factors["after"] = shedder.factor

    asyncio.run(main())
    assert factors["idle"] == 1.0
    assert factors["short burst"] == 1.0
    assert factors["behind"] <= 0.25
    assert factors["after"] == 1.0


def test_one_slow_callback_is_not_overload() -> None:
    shedder = LoadShedder()
    lowest = 1.0

    async def main() -> None:
        nonlocal lowest
        shedder.watch_running_loop()
        for _ in range(5):
            await asyncio.sleep(0.3)
            time.sleep(0.03)  # an error being captured, now and then
            await asyncio.sleep(0.06)
            lowest = min(lowest, shedder.factor)

    asyncio.run(main())
    assert lowest == 1.0


def test_an_export_backlog_sheds_without_any_loop() -> None:
    shedder = LoadShedder(interval=0.01)
    for _ in range(3):
        shedder.report_backlog(8_000, 20_000)
        time.sleep(0.011)
    assert shedder.factor == 0.125
    for _ in range(40):
        shedder.report_backlog(10, 20_000)
        time.sleep(0.011)
    assert shedder.factor == 1.0


def _init(inbox: Inbox, **options: Any) -> None:
    otel_sentry.init(
        dsn=inbox.dsn(),
        instrument=False,
        traces_sample_rate=1.0,
        release="pressure@1",
        **options,
    )


async def _requests_while_behind(n: int) -> tuple[int, set[str]]:
    """``n`` server spans, three per turn of a loop another task keeps ~120 ms behind.

    Every other one continues an upstream trace whose ``sample_rand`` is 0.0005: below any
    shed rate, so every shedding service keeps those same traces. Returns n and their ids.
    """
    tracer = trace.get_tracer("pressure-test")
    done = asyncio.Event()
    busy = asyncio.create_task(_busy(0.0, block=0.12, until=done))
    low: set[str] = set()
    for i in range(n):
        context = None
        if i % 2 == 0:
            trace_id = f"{i + 1:032x}"
            low.add(trace_id)
            context = propagate.extract(
                {
                    "sentry-trace": f"{trace_id}-{i + 1:016x}-1",
                    "baggage": f"sentry-trace_id={trace_id},sentry-sample_rate=1.0,"
                    "sentry-sample_rand=0.000500,sentry-sampled=true,sentry-public_key=key",
                }
            )
        with tracer.start_as_current_span(
            f"GET /work/{i}", context=context, kind=trace.SpanKind.SERVER
        ):
            pass
        if i % 3 == 2:
            await asyncio.sleep(0)
    done.set()
    await busy
    return n, low


@pytest.mark.usefixtures("fresh")
def test_shed_traces_are_reported_as_backpressure_and_kept_ones_carry_their_rate(
    inbox: Inbox,
) -> None:
    _init(inbox)
    n, low = asyncio.run(_requests_while_behind(60))
    otel_sentry.shutdown()  # sends what was kept and the client reports
    transactions = inbox.transactions()
    shed = dict(inbox.counts.discarded).get(("backpressure", "transaction"), 0)
    assert shed > 0 and len(transactions) + shed == n  # every trace accounted for
    kept = {t["contexts"]["trace"]["trace_id"] for t in transactions}
    assert low <= kept  # the lowest sample_rand survives shedding, here as upstream
    rates = [t["contexts"]["trace"]["data"]["sentry.sample_rate"] for t in transactions]
    assert min(rates) < 1.0  # kept while shedding: the effective rate, for extrapolation
    # The trace header: a trace started here carries the rate it was kept at; a continued one
    # carries its head's (the DSC is frozen where the trace starts).
    for received in inbox.envelopes:
        for transaction in received.envelope.transactions():
            header_rate = float(received.envelope.headers["trace"]["sample_rate"])
            if transaction["contexts"]["trace"]["trace_id"] in low:
                assert header_rate == 1.0
            else:
                rate = transaction["contexts"]["trace"]["data"]["sentry.sample_rate"]
                assert header_rate == pytest.approx(rate)
    assert inbox.problems == []


@pytest.mark.usefixtures("fresh")
def test_with_load_shedding_off_every_trace_is_kept(inbox: Inbox) -> None:
    _init(inbox, load_shedding=False)
    n, _ = asyncio.run(_requests_while_behind(60))
    otel_sentry.shutdown()
    assert len(inbox.transactions()) == n
    assert ("backpressure", "transaction") not in dict(inbox.counts.discarded)
