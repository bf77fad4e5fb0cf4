"""One row of the distant-ingest benchmark: one setup in a fresh process, paced load, then flush.

``benchmarks/distant.py`` starts it once per row and reads the JSON line it prints last. The
load is the FastAPI app of ``benchmarks/app.py`` driven in-process through
``httpx.ASGITransport`` on a schedule of start times (``--rps``, for ``--duration`` seconds); a
request that finishes late makes the next one start at once. Then the setup's own flush with a
30 s budget is timed, the sink's count is read (what arrived by the end of the flush), the CPU
of the threads that did the sending is read from ``/proc``, and the process exits normally so
that each SDK's atexit hook does its shutdown::

    python -m benchmarks.distant_worker --setup otel_sentry --dsn http://key@127.0.0.1:8969/1 \
        --spool-dir /tmp/spool --rps 1000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.app import create_app, request_path
from benchmarks.setups import Options, SpanCounter, _sentry_init

__all__ = ["SENDERS", "main"]

_TICK = os.sysconf("SC_CLK_TCK")
WARMUP = 200  # requests before the schedule starts: counted as produced, not timed


@dataclass
class Sender:
    """A configured process: how to flush it, and what it counted itself."""

    flush: Callable[[float], Any] = lambda timeout: True
    counter: SpanCounter | None = None
    unit: str = "transactions"
    notes: list[str] = field(default_factory=list)


def _bare(options: Options, args: argparse.Namespace) -> Sender:
    return Sender(unit="-")


def _otel_sentry(options: Options, args: argparse.Namespace) -> Sender:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    import otel_sentry

    config = _config_module()

    notes: list[str] = []
    kwargs: dict[str, Any] = {
        "dsn": options.sink_dsn,
        "traces_sample_rate": 1.0,
        "instrument": ("fastapi",),
    }
    # The defaults, as a user gets them: envelopes wait in memory, and what is left at exit
    # goes to the per-user exit spool, pointed into the row's directory so the runner counts it.
    if args.spool_dir:
        os.environ["XDG_CACHE_HOME"] = args.spool_dir
    # Options an earlier revision (``--baseline``) may not know: passed only if it does. Load
    # shedding is off unless asked for (``--load-shedding``, the default a user gets): at 1000
    # req/s the app is past what 2 cores serve traced, and what the shedder drops (reported as
    # backpressure) would hide what the transport delivers.
    optional: dict[str, Any] = {"load_shedding": args.load_shedding}
    if args.ca_file:
        optional["ca_certs"] = args.ca_file
    for name, value in optional.items():
        if _knows(name, kwargs, config.resolve, config.ConfigError):
            kwargs[name] = value
        elif name == "ca_certs":
            # Our transport reads SSL_CERT_FILE when it is built, as urllib3 does.
            os.environ["SSL_CERT_FILE"] = args.ca_file
            notes.append("CA via SSL_CERT_FILE: otel_sentry.init() has no ca_certs option")
        else:
            notes.append(f"not passed: otel_sentry.init() has no {name} option")
    otel_sentry.init(**kwargs)
    counter = None
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        counter = SpanCounter()
        provider.add_span_processor(counter)
    return Sender(flush=otel_sentry.flush, counter=counter, notes=notes)


def _config_module() -> Any:
    """otel_sentry's config module: under ``_internal`` now, at the top in revisions before it
    (``--baseline``)."""
    try:
        from otel_sentry._internal import config
    except ImportError:
        from otel_sentry import config  # type: ignore[attr-defined,no-redef]
    return config


def _knows(name: str, kwargs: dict[str, Any], resolve: Any, error: type[Exception]) -> bool:
    """Whether the otel_sentry that was imported has option ``name``.

    Its ``config`` names them (``OPTIONS`` and the code-only ``CODE_ONLY``); a version without
    those lists is asked by resolving the option with a placeholder value.
    """
    config = _config_module()
    try:
        known = {o.name for o in config.OPTIONS} | set(config.CODE_ONLY)
    except (AttributeError, TypeError):
        try:
            resolve({**kwargs, name: None}, environ={})
        except error:
            return False
        return True
    return name in known


def _otel_otlp(options: Options, args: argparse.Namespace) -> Sender:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    notes: list[str] = []
    if args.ca_file:
        # requests 2.34 verifies with its default bundle whatever Session.verify says, so the
        # exporter's certificate_file alone fails; a request-level bundle from the env works.
        os.environ["REQUESTS_CA_BUNDLE"] = args.ca_file
        notes.append("CA via certificate_file and REQUESTS_CA_BUNDLE (requests ignores the first)")
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-sentry-bench"}))
    trace.set_tracer_provider(provider)
    exporter = OTLPSpanExporter(
        endpoint=f"{options.sink_url}/v1/traces", certificate_file=args.ca_file or None
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    counter = SpanCounter()
    provider.add_span_processor(counter)
    FastAPIInstrumentor().instrument()
    return Sender(
        flush=lambda timeout: provider.force_flush(int(timeout * 1000)),
        counter=counter,
        unit="spans",
        notes=notes,
    )


def _sentry(options: Options, args: argparse.Namespace, http2: bool) -> Sender:
    import sentry_sdk

    extra: dict[str, Any] = {}
    if args.ca_file:
        extra["ca_certs"] = args.ca_file
    if http2:
        extra["_experiments"] = {"transport_http2": True}
    _sentry_init(options, **extra)
    transport = sentry_sdk.get_client().transport
    name = type(transport).__name__ if transport is not None else "None"
    notes = [f"transport {name}"] if http2 else []
    if http2:
        try:
            import h2  # noqa: F401
            import httpcore  # noqa: F401
        except ImportError as exc:
            notes.append(f"httpcore[http2] missing ({exc}): sentry_sdk fell back to HTTP/1.1")
    return Sender(flush=lambda timeout: sentry_sdk.flush(timeout=timeout), notes=notes)


SENDERS: dict[str, Callable[[Options, argparse.Namespace], Sender]] = {
    "bare": _bare,
    "otel_sentry": _otel_sentry,
    "otel_otlp": _otel_otlp,
    "sentry_native": lambda o, a: _sentry(o, a, http2=False),
    "sentry_http2": lambda o, a: _sentry(o, a, http2=True),
}


async def _drive(app: Any, rps: float, duration: float) -> dict[str, Any]:
    """Paced requests for ``duration`` s: request k starts at t0 + k/rps, or at once if late."""
    import httpx

    failures = 0
    latencies: list[int] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for i in range(WARMUP):
            failures += (await client.get(request_path(i % 1000))).status_code != 200
        t0 = time.perf_counter()
        end = t0 + duration
        k = 0
        behind = 0.0
        while True:
            scheduled = t0 + k / rps
            now = time.perf_counter()
            if now >= end or scheduled >= end:
                break
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
            behind = max(0.0, time.perf_counter() - scheduled)
            start = time.perf_counter_ns()
            response = await client.get(request_path(k % 1000))
            latencies.append(time.perf_counter_ns() - start)
            failures += response.status_code != 200
            k += 1
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "requests": WARMUP + k,
        "timed": k,
        "planned": int(rps * duration),
        "failures": failures,
        "behind_s": round(behind, 3),
        "achieved_rps": round(k / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_us": _percentile(latencies, 0.50),
        "p99_us": _percentile(latencies, 0.99),
    }


def _percentile(ordered: list[int], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 1)


def _task_seconds(path: str) -> float:
    try:
        with open(path, encoding="ascii") as stat:
            after = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(after[11]) + int(after[12])) / _TICK  # utime, stime


def sender_cpu() -> dict[str, Any]:
    """CPU seconds of everything but the main (request) thread, two ways.

    ``threads_s``: the threads alive now, each from /proc/self/task/<tid>/stat.
    ``process_minus_main_s``: the whole process (which keeps the time of threads that already
    exited) minus the main thread.
    """
    main_tid = threading.main_thread().native_id
    names = {t.native_id: t.name for t in threading.enumerate()}
    threads: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == main_tid:
            continue
        seconds = _task_seconds(f"/proc/self/task/{tid}/stat")
        name = names.get(int(tid), f"tid {tid}")
        threads[name] = round(threads.get(name, 0.0) + seconds, 3)
    process = _task_seconds("/proc/self/stat")
    main = _task_seconds(f"/proc/self/task/{main_tid}/stat")
    return {
        "threads_s": round(sum(threads.values()), 3),
        "process_minus_main_s": round(process - main, 3),
        "main_s": round(main, 3),
        "by_thread": threads,
    }


def sink_counts(options: Options, ca_file: str | None) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    with urllib.request.urlopen(
        f"{options.sink_url}/api/_inbox/stats", timeout=30, context=context
    ) as response:
        counts: dict[str, Any] = json.load(response)["counts"]
        return counts


def _watch(every: float, samples: list[list[float]]) -> None:
    """Every ``every`` s: where otel_sentry's backlog is (``benchmarks.backlog`` prints it)."""
    import sentry_sdk

    from otel_sentry._internal import pipeline
    from otel_sentry._internal.sentry.span_processor import TransactionExporter

    [exporter] = [t for t in pipeline.switchboard.targets if isinstance(t, TransactionExporter)]
    transport: Any = sentry_sdk.get_client().transport
    wire = transport.wire
    start = time.monotonic()
    while True:
        time.sleep(every)
        with open("/proc/self/statm", encoding="ascii") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        samples.append(
            [
                round(time.monotonic() - start, 1),
                round(rss),
                len(exporter._queue),  # spans waiting for the export thread
                len(wire._incoming) + len(wire._queue),  # envelopes waiting for a connection
                wire._busy,  # envelopes sent, not yet answered
                len(wire._links),  # connections
                len(transport.spool),  # envelopes in the spool
            ]
        )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    options = Options(rate=1.0, sink_dsn=args.dsn)
    sender = SENDERS[args.setup](options, args)
    watched: list[list[float]] = []
    if args.watch and args.setup == "otel_sentry":
        threading.Thread(target=_watch, args=(args.watch, watched), daemon=True).start()
    app = create_app()
    load = asyncio.run(_drive(app, args.rps, args.duration))
    start = time.perf_counter()
    flushed = sender.flush(args.flush_timeout)
    drain_s = time.perf_counter() - start
    at_flush = sink_counts(options, args.ca_file) if args.setup != "bare" else {}
    cpu = sender_cpu()
    return {
        "setup": args.setup,
        "unit": sender.unit,
        **load,
        "roots": sender.counter.roots if sender.counter else None,
        "spans": sender.counter.spans if sender.counter else None,
        "flush_result": flushed if isinstance(flushed, bool) else None,
        "drain_s": round(drain_s, 3),
        "at_flush": at_flush,
        "cpu": cpu,
        # ru_maxrss is in KiB on Linux.
        "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "notes": sender.notes,
        "watch": watched,
        # Which otel_sentry ran: the runner checks a --baseline row imported the old tree's.
        "otel_sentry_file": getattr(sys.modules.get("otel_sentry"), "__file__", None),
        "printed_at": time.time(),  # the runner times the atexit shutdown from here
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.distant_worker", description=__doc__
    )
    parser.add_argument("--setup", required=True, choices=sorted(SENDERS))
    parser.add_argument("--dsn", required=True, help="DSN of the running sink")
    parser.add_argument("--ca-file", default="", help="CA PEM of a TLS sink")
    parser.add_argument("--spool-dir", default=None, help="otel_sentry's spool_dir")
    parser.add_argument("--rps", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--flush-timeout", type=float, default=30.0)
    parser.add_argument("--watch", type=float, default=0.0, help="sample the backlog every s")
    parser.add_argument("--load-shedding", action="store_true", help="otel_sentry's default")
    args = parser.parse_args(argv)
    result = measure(args)
    # The runner reads the last line of stdout; SDK chatter goes elsewhere or comes before it.
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0  # a normal exit: the SDKs' atexit hooks shut them down after this


if __name__ == "__main__":
    sys.exit(main())
