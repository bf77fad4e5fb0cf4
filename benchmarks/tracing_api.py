"""What ``with sentry_sdk.start_span(...)`` costs through the bridge, against a bare OTel span.

    .venv/bin/python -m benchmarks.tracing_api            # ~20 s; prints a table, writes nothing
    .venv/bin/python -m benchmarks.tracing_api --quick    # smoke run

All variants run in the same process, interleaved round by round, under the full
``otel_sentry.init()`` setup (sampling at 1.0, Sentry export to a local inbox), every
``BATCH`` spans under one root span as spans inside one request would be:

- ``bare span (anchor)``: ``tracer.start_as_current_span("parse schema")``;
- ``bare span + sentry attributes``: the same with the ``sentry.op``/``sentry.description``
  attributes the bridge sets, i.e. what the bridge cannot avoid;
- ``sentry_sdk.start_span``: ``with sentry_sdk.start_span(op=..., name=...)`` through
  ``otel_sentry/_internal/sentry/tracing_api.py``;
- ``@sentry_sdk.trace``: a decorated function (sentry_sdk's wrapper, ``get_current_span()`` and
  ``start_child()`` through the bridge).

Times are the calling thread's CPU time (``time.thread_time``): the request-path cost,
unaffected by the export thread and by other processes on a shared machine. The median round
is reported and the ratio to the anchor is what to compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry.inbox import Inbox

BATCH = 200
_TRACER = trace.get_tracer("bench")
_ATTRIBUTES = {"sentry.op": "serialize", "sentry.description": "parse schema"}


def _bare_span() -> None:
    with _TRACER.start_as_current_span("parse schema"):
        pass


def _bare_span_with_attributes() -> None:
    with _TRACER.start_as_current_span("parse schema", attributes=_ATTRIBUTES):
        pass


def _sentry_start_span() -> None:
    with sentry_sdk.start_span(op="serialize", name="parse schema"):
        pass


@sentry_sdk.trace
def _parse_schema() -> None:
    pass


def _per_span_us(work: Callable[[], None], spans: int) -> float:
    tracer = _TRACER
    start = time.thread_time()
    for _ in range(max(1, spans // BATCH)):
        with tracer.start_as_current_span("request"):
            for _ in range(BATCH):
                work()
    return (time.thread_time() - start) / spans * 1e6


def run(rounds: int, spans: int) -> str:
    variants: dict[str, Callable[[], None]] = {
        "bare span (anchor)": _bare_span,
        "bare span + sentry attributes": _bare_span_with_attributes,
        "sentry_sdk.start_span": _sentry_start_span,
        "@sentry_sdk.trace": _parse_schema,
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    with Inbox(port=0, keep_payloads=False) as inbox:
        otel_sentry.init(dsn=inbox.dsn(), instrument=False, traces_sample_rate=1.0)
        try:
            for work in variants.values():
                _per_span_us(work, BATCH * 5)  # warm-up
            for _ in range(rounds):
                for name, work in variants.items():
                    timings[name].append(_per_span_us(work, spans))
                    otel_sentry.flush(10)  # the export thread's backlog stays out of the next
        finally:
            otel_sentry.shutdown()
    median = {name: statistics.median(values) for name, values in timings.items()}
    anchor = median["bare span (anchor)"]
    lines = [
        f"median of {rounds} interleaved rounds of {spans} spans per variant, every {BATCH} "
        f"under one root; CPU us per span of the calling thread; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        "",
        "| variant | CPU us per span | / anchor |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {value:.2f} | {value / anchor:.2f}x |" for name, value in median.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sentry_sdk.start_span through the bridge")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--spans", type=int, default=4000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds, spans = (3, 1000) if args.quick else (args.rounds, args.spans)
    print(run(rounds, spans))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
