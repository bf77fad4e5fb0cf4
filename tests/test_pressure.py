"""Load shedding: fewer new traces while the process falls behind, all of them again after.

The shedder's decisions run on the test's clock: a real event loop whose time is the test's
(``LateLoop``), so each probe runs exactly as late as the test says and the factor is asserted
probe by probe, and the CPU time the shedder reads is the test's too. One test keeps a real loop
behind for real, end to end. The pipeline tests assert what reaches the inbox (transactions,
their sample rate, the ``backpressure`` client reports).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import closing
from typing import Any, NamedTuple

import pytest
from opentelemetry import propagate, trace

import otel_sentry
from otel_sentry._internal.pressure import LoadShedder
from otel_sentry.inbox import Inbox

# The factor from its first halving down to the floor (1%), where it stays.
HALVINGS = [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.01]


class Process:
    """What a shedder under test reads: the time, and the CPU time the process has used.

    While time passes the process uses ``busy`` of a core.
    """

    def __init__(self, busy: float = 0.0) -> None:
        self.now = 1000.0  # as time.monotonic(): far from the shedder's initial marks (0)
        self.cpu = 0.0
        self.busy = busy

    def clock(self) -> float:
        return self.now

    def cpu_time(self) -> float:
        return self.cpu

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.cpu += seconds * self.busy

    def shedder(self) -> LoadShedder:
        return LoadShedder(clock=self.clock, cpu_time=self.cpu_time)


class Probe(NamedTuple):
    at: float  # seconds since the loop was first watched
    lag: float  # the shedder's smoothed lag after this probe
    factor: float  # and its factor


class LateLoop(asyncio.SelectorEventLoop):
    """A real event loop on the test's clock, watched by ``shedder`` (``watch_running_loop``).

    Its timers run once the test has moved the clock past them, so the shedder's probe runs
    exactly as late as the test says: the time another callback held the loop.
    """

    def __init__(self, process: Process, shedder: LoadShedder) -> None:
        self.process = process  # set first: time() needs it
        super().__init__()
        self.shedder = shedder
        self.start = process.now
        self.run_until_complete(self._watch())
        self.due = process.now + shedder.interval  # the first probe's

    def time(self) -> float:
        return self.process.now

    async def _watch(self) -> None:
        self.shedder.watch_running_loop()

    def probes(self, lates: list[float]) -> list[Probe]:
        """One probe per entry, each run ``late`` seconds after it was due; what followed each."""
        seen = []
        for late in lates:
            self.process.advance(self.due + late - self.process.now)
            self.run_until_complete(asyncio.sleep(0))  # a turn of the loop: the due probe runs
            shedder = self.shedder
            seen.append(Probe(self.process.now - self.start, shedder.lag, shedder.factor))
            self.due = self.process.now + shedder.interval  # the probe schedules the next one
        return seen


def test_a_loop_behind_for_a_second_sheds_then_halves_at_every_probe() -> None:
    process = Process()
    shedder = process.shedder()
    with closing(LateLoop(process, shedder)) as loop:
        probes = loop.probes([0.3] * 12)
    # Each probe runs 300 ms late, so they are 350 ms apart; the smoothed lag is over 50 ms
    # from the first on.
    assert all(p.lag > shedder.lag_overload for p in probes)
    # Nothing is shed until it has been so for a second: the fourth probe, 1.05 s after the
    # first. From then on every probe halves the factor, down to the floor.
    assert probes[3].at - probes[0].at == pytest.approx(1.05)
    assert [p.factor for p in probes] == [1.0, 1.0, 1.0, *HALVINGS, 0.01, 0.01]


def test_behind_for_less_than_a_second_at_a_time_never_sheds() -> None:
    process = Process()
    shedder = process.shedder()
    with closing(LateLoop(process, shedder)) as loop:
        # Three bursts: two probes 300 ms late each, then the loop works the burst off.
        probes = loop.probes([0.3, 0.3, 0.0, 0.0, 0.0, 0.0] * 3)
    # Behind (the smoothed lag over 50 ms) for 0.5 s in each burst, from the first burst to
    # the last for well over a second, but never for a second without a break.
    assert [p.lag > shedder.lag_overload for p in probes] == ([True] * 5 + [False]) * 3
    assert probes[-2].at - probes[0].at > 2 * shedder.sustain
    assert [p.factor for p in probes] == [1.0] * 18


def test_one_slow_callback_is_not_overload() -> None:
    process = Process()
    shedder = process.shedder()
    with closing(LateLoop(process, shedder)) as loop:
        # An error being captured holds the loop for half a second, once; the rest is on time.
        probes = loop.probes([0.0] * 5 + [0.5] + [0.0] * 15)
    assert probes[5].lag > shedder.lag_overload  # a spike, smoothed: behind for four probes
    assert probes[-1].lag < shedder.lag_ok
    assert [p.factor for p in probes] == [1.0] * 21


@pytest.mark.parametrize(
    ("busy", "late", "factors"),
    [
        # A whole core in use and the loop 30 ms late: the waiting is in the clients. The lag
        # is over 20 ms from the 4th probe (80 ms apart) and the CPU share, read every 250 ms,
        # says busy from the 5th; a second after that, the 18th halves.
        (1.0, 0.03, [1.0] * 17 + HALVINGS + [0.01] * 6),
        (1.0, 0.015, [1.0] * 30),  # a whole core, but the loop keeps up (under 20 ms late)
        (0.5, 0.03, [1.0] * 30),  # 30 ms late with CPU to spare: not overload (under 50 ms)
    ],
    ids=["busy-and-late", "busy-keeping-up", "late-with-cpu-to-spare"],
)
def test_a_saturated_core_with_a_late_loop_is_overload(
    busy: float, late: float, factors: list[float]
) -> None:
    process = Process(busy=busy)
    shedder = process.shedder()
    with closing(LateLoop(process, shedder)) as loop:
        probes = loop.probes([late] * 30)
    assert all(p.lag < shedder.lag_overload for p in probes)  # the lag alone is no overload
    assert [p.factor for p in probes] == factors


def _shed_then_on_time(process: Process, shedder: LoadShedder) -> list[Probe]:
    """Behind for over a second (shedding to 25%), then the loop on time (2 ms late)."""
    with closing(LateLoop(process, shedder)) as loop:
        shed = loop.probes([0.3] * 5)
        assert [p.factor for p in shed] == [1.0, 1.0, 1.0, 0.5, 0.25]
        after = loop.probes([0.002] * 35)
    # The smoothed lag comes down: over 50 ms for four more probes, which still halve (once
    # shedding, falling behind halves at once), between 10 and 50 ms for five, under 10 ms after.
    assert all(p.lag > shedder.lag_overload for p in after[:4])
    assert all(shedder.lag_ok <= p.lag <= shedder.lag_overload for p in after[4:9])
    assert all(p.lag < shedder.lag_ok for p in after[9:])
    return after


def test_on_time_with_cpu_to_spare_it_grows_back_by_a_quarter_per_probe() -> None:
    process = Process(busy=0.0)
    shedder = process.shedder()
    after = _shed_then_on_time(process, shedder)
    assert [p.factor for p in after[:9]] == [0.125, 0.0625, 0.03125] + [0.015625] * 6
    grown = [p.factor for p in after[9:]]
    assert grown == pytest.approx([min(1.0, 0.015625 * 1.25**k) for k in range(1, 27)])
    assert grown[17] < 1.0 and grown[18] == 1.0  # all traces again 19 probes on (< 1 s)
    assert after[9 + 18].at - after[9].at < 1.0


def test_on_time_with_the_cpu_still_busy_it_holds() -> None:
    process = Process(busy=0.8)  # over cpu_spare (75%), under cpu_busy (90%)
    shedder = process.shedder()
    after = _shed_then_on_time(process, shedder)
    assert [p.factor for p in after] == [0.125, 0.0625, 0.03125] + [0.015625] * 32


def test_once_shedding_falling_behind_again_halves_at_once() -> None:
    process = Process()
    shedder = process.shedder()
    with closing(LateLoop(process, shedder)) as loop:
        loop.probes([0.3] * 5)  # shedding: 25%, then down to 1.6% while catching up
        on_time = loop.probes([0.002] * 12)
        (again,) = loop.probes([0.3])
    # Caught up (under 10 ms late), the factor was growing back, a quarter per probe...
    assert on_time[-1].lag < shedder.lag_ok
    assert [p.factor for p in on_time[-4:]] == [0.015625, 0.01953125, 0.0244140625, 0.030517578125]
    # ...when the loop fell behind again: halved at the first late probe, not a second later.
    assert again.lag > shedder.lag_overload
    assert again.factor == 0.030517578125 / 2


def _report_backlog(
    process: Process, shedder: LoadShedder, queued: int, seconds: float
) -> list[tuple[int, float]]:
    """The export thread's report every 10 ms for ``seconds``: (ms, factor) at each change."""
    changes = []
    for _ in range(round(seconds / 0.01)):
        before = shedder.factor
        shedder.report_backlog(queued, 20_000)
        if shedder.factor != before:
            changes.append((round((process.now - 1000.0) * 1000), shedder.factor))
        process.advance(0.01)
    return changes


def test_an_export_backlog_sheds_without_any_loop() -> None:
    process = Process()
    shedder = process.shedder()
    # Over a quarter of the queue: halved at once and every 50 ms (no second's grace here).
    assert _report_backlog(process, shedder, 8_000, 0.2) == [
        (0, 0.5),
        (50, 0.25),
        (100, 0.125),
        (150, 0.0625),
    ]
    # Between 5% and 25%: held.
    assert _report_backlog(process, shedder, 2_000, 0.5) == []
    # Under 5%: a quarter more every 50 ms, back to 1 in 0.6 s.
    grown = _report_backlog(process, shedder, 0, 1.0)
    assert [ms for ms, _ in grown] == list(range(700, 1301, 50))
    assert [f for _, f in grown] == pytest.approx(
        [min(1.0, 0.0625 * 1.25**k) for k in range(1, 14)]
    )
    assert shedder.factor == 1.0


def test_the_log_says_when_shedding_starts_every_10_s_while_it_lasts_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    process = Process()
    shedder = process.shedder()
    with caplog.at_level(logging.INFO, logger="otel_sentry"):
        _report_backlog(process, shedder, 8_000, 15.0)
        _report_backlog(process, shedder, 0, 2.0)
    assert shedder.factor == 1.0
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "otel_sentry"]
    shedding = (
        "otel-sentry: the process is falling behind; keeping {}% of new traces "
        "(lowest {}% since the last line; dropped ones are reported as backpressure)"
    )
    assert lines == [
        ("WARNING", shedding.format(50, 50)),
        ("WARNING", shedding.format(1, 1)),  # 10 s later, at the floor since
        ("INFO", "otel-sentry: keeping up again; sampling at the configured rate"),
    ]


def test_a_real_loop_kept_behind_sheds_and_recovers_once_it_keeps_up() -> None:
    """End to end on a real loop and the real clocks: the probe sees real blocking."""
    shedder = LoadShedder()

    async def main() -> None:
        shedder.watch_running_loop()
        deadline = time.monotonic() + 30
        while shedder.factor == 1.0:  # each turn holds the loop 120 ms: behind
            assert time.monotonic() < deadline, f"never shed (smoothed lag {shedder.lag:.3f} s)"
            time.sleep(0.12)
            await asyncio.sleep(0)
        deadline = time.monotonic() + 30
        while shedder.factor < 1.0:  # the loop idles: keeping up
            assert time.monotonic() < deadline, f"never recovered (factor {shedder.factor})"
            await asyncio.sleep(0.05)

    asyncio.run(main())


async def _busy(seconds: float, block: float, until: asyncio.Event | None = None) -> None:
    """Keep the loop behind: each step holds it for ``block`` seconds, then yields once."""
    end = time.monotonic() + seconds
    while time.monotonic() < end or (until is not None and not until.is_set()):
        time.sleep(block)
        await asyncio.sleep(0)


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
