"""Load shedding: keep fewer new traces while the process cannot keep up, all of them otherwise.

A recorded trace costs CPU on the request's own thread (spans, attributes, context) and on the
export thread; at rate 1.0 that is a large share of a small request's work. When a burst takes
the process past what it can serve, that share is what turns "busy" into a latency cliff
(BENCHMARKS.md, soak: burst_10x). sentry_sdk's answer is its backpressure monitor, which halves
the sample rate every 10 s while its send queue is full; ours reacts within a tenth of a second,
and to the app falling behind, not only to the send queue:

- **Event-loop lag** (asyncio apps, every framework): the first sampling decision made on a
  running loop schedules a probe on it every ``interval`` seconds; how late the probe runs is
  how long ready work waits in that loop, which is what a request's latency is made of.
- **Export backlog** (every app, threads included): the span queue of the export thread, which
  falls behind when the process is short of CPU.

While either signal says overloaded, the factor halves every interval (down to ``floor``); when
all is well again it grows back by a quarter per interval (from the floor to 1 in ~1 s). The
sampler keeps a trace only if ``sample_rand < rate * factor``; ``sample_rand`` travels with the
trace, so every shedding service keeps the same traces, and the rate recorded on the kept ones
is the effective rate (Sentry extrapolates counts from it). Traces dropped this way are reported
as ``backpressure`` in client reports. Errors are never shed.

It is a safety net against the cliff, not a latency tuner. Overload is, for ``sustain`` (1 s)
without a break: a smoothed lag over ``lag_overload`` (50 ms: work arriving faster than the loop
clears it), or the process using ~a whole core (``cpu_busy``, 90%) while the loop is more than
``lag_busy`` (20 ms) late, the case where the waiting happens in the clients rather than in the
loop (a few keep-alive connections, each waiting for its answer). A busy loop that keeps up, a
burst worked off within a second or one slow callback (an error being captured) never sheds.
Once shedding, falling behind again halves at once. The factor grows back only when the loop
is under ``lag_ok`` (10 ms) late and the process uses under ``cpu_spare`` (75%) of a core; in
between it holds. Vendor-neutral: no Sentry here.

Time comes from ``clock`` (``time.monotonic``) and CPU time from ``cpu_time``
(``time.process_time``), both injectable; how late the probe runs, how long the loop has been
behind and the CPU share's window are measured on the loop's own clock (``loop.time()``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from otel_sentry._internal.counters import DropCounter

__all__ = ["LoadShedder"]

_log = logging.getLogger("otel_sentry")

LAG_SMOOTHING = 0.3  # weight of the newest probe in the smoothed lag (time constant ~3 probes)


class LoadShedder:
    """The share of the configured sample rate to keep right now (``factor``, 1.0 when healthy).

    ``watch_running_loop()`` is called per sampling decision and costs one identity check once
    the loop is watched. ``report_backlog()`` is called by the export thread.
    """

    def __init__(
        self,
        *,
        interval: float = 0.05,
        lag_overload: float = 0.050,
        lag_ok: float = 0.010,
        lag_busy: float = 0.020,
        sustain: float = 1.0,
        cpu_busy: float = 0.9,
        cpu_spare: float = 0.75,
        backlog_overload: float = 0.25,
        floor: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        cpu_time: Callable[[], float] = time.process_time,
    ) -> None:
        self.factor = 1.0
        self._clock = clock
        self._cpu_time = cpu_time
        self.interval = interval
        self.lag_overload = lag_overload
        self.lag_ok = lag_ok
        self.lag_busy = lag_busy
        self.sustain = sustain
        self.cpu_busy = cpu_busy
        self.cpu_spare = cpu_spare
        self._cpu_mark = (0.0, 0.0)  # (loop time, process CPU seconds) at the last reading
        self._cpu = 0.0
        self._behind_since: float | None = None
        self.backlog_overload = backlog_overload
        self.floor = floor
        self._lock = threading.Lock()
        self._loop_state: tuple[bool | None, float] = (None, 0.0)  # (overloaded?, when)
        self._backlog_state: tuple[bool | None, float] = (None, 0.0)
        self.lag = 0.0  # smoothed event-loop lag, seconds
        self._last_step = 0.0
        self._last_loop: Any = None
        self._watched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._drops = DropCounter()
        self._last_announced = 0.0
        self.lowest = 1.0  # the lowest factor since the last announcement (for the log line)

    # -- sampler side (request thread) ------------------------------------------------------
    def watch_running_loop(self) -> None:
        loop = asyncio._get_running_loop()
        if loop is None or loop is self._last_loop:
            return
        self._last_loop = loop
        if loop in self._watched:
            return
        self._watched.add(loop)
        loop.call_later(self.interval, self._probe, loop, loop.time() + self.interval)

    def count_drop(self) -> None:
        self._drops.add()  # reported by the export thread

    def drops_since_last_call(self) -> int:
        return self._drops.since_last_call()

    # -- signals ------------------------------------------------------------------------------
    def _probe(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        # Smoothed: one slow callback (an error being captured) is a spike, not overload.
        self.lag = lag = self.lag + LAG_SMOOTHING * (max(0.0, now - due) - self.lag)
        cpu = self._cpu_share(now)
        busy = cpu >= self.cpu_busy
        overloaded: bool | None
        if lag > self.lag_overload or (busy and lag > self.lag_busy):
            # A burst the loop works off within ``sustain`` seconds is not overload; once
            # shedding, falling behind again is (waiting another second would let it pile up).
            if self._behind_since is None:
                self._behind_since = now
            sustained = now - self._behind_since >= self.sustain
            overloaded = True if sustained or self.factor < 1.0 else None
        else:
            self._behind_since = None
            # Growing back only with CPU to spare (under 75% of a core): it holds otherwise.
            overloaded = False if lag < self.lag_ok and cpu < self.cpu_spare else None
        self._loop_state = (overloaded, self._clock())
        self._step()
        if not loop.is_closed():
            loop.call_later(self.interval, self._probe, loop, now + self.interval)

    def _cpu_share(self, now: float) -> float:
        """The share of one core the process used over the last quarter second or so.

        With few client connections the queue is not in the loop but in the clients (each
        waits for its answer before sending the next request): the loop stays only a little
        late while the process is saturated. CPU time tells that case apart from a busy loop
        that keeps up. ``cpu_time()`` (``time.process_time``) is a system call: once per probe,
        not per request.
        """
        since, cpu_then = self._cpu_mark
        if now - since < 0.25:
            return self._cpu
        cpu = self._cpu_time()
        self._cpu = (cpu - cpu_then) / (now - since)
        self._cpu_mark = (now, cpu)
        return self._cpu

    def report_backlog(self, queued: int, capacity: int) -> None:
        if capacity <= 0:
            return
        ratio = queued / capacity
        overloaded = True if ratio >= self.backlog_overload else (False if ratio < 0.05 else None)
        self._backlog_state = (overloaded, self._clock())
        self._step()

    # -- control ------------------------------------------------------------------------------
    def _step(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last_step < self.interval * 0.9:
                return
            self._last_step = now
            states = [s for s, when in (self._loop_state, self._backlog_state) if now - when < 1.0]
            if True in states:
                self.factor = max(self.floor, self.factor / 2)
            elif states and all(s is False for s in states) and self.factor < 1.0:
                self.factor = min(1.0, self.factor * 1.25)
            self.lowest = min(self.lowest, self.factor)
        self._announce(now)

    def _announce(self, now: float) -> None:
        # A line when shedding starts, then at most one per 10 s while it lasts, and one when
        # it ends: the operator sees it in the app's log without a line per request.
        if self.factor < 1.0 and now - self._last_announced >= 10.0:
            self._last_announced = now
            _log.warning(
                "otel-sentry: the process is falling behind; keeping %.0f%% of new traces "
                "(lowest %.0f%% since the last line; dropped ones are reported as backpressure)",
                self.factor * 100,
                self.lowest * 100,
            )
            self.lowest = self.factor
        elif self.factor == 1.0 and self._last_announced:
            self._last_announced = 0.0
            _log.info("otel-sentry: keeping up again; sampling at the configured rate")
