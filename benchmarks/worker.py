"""Runs ONE setup in a fresh process and prints one JSON line with what it measured.

A fresh process per setup is the only clean way: SDKs and instrumentations patch global state
that cannot be undone. The runner starts it; it can also be run by hand::

    python -m benchmarks.worker --setup otel_otlp --rate 1.0 --sink-dsn http://key@127.0.0.1:8969/1

Requests go through ``httpx.ASGITransport`` on one event loop, awaited one after another, so the
numbers are the in-process cost of a request with no network or server scheduling in them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import sys
import time
from typing import Any

from benchmarks.app import create_app, request_path
from benchmarks.setups import SETUPS, Options

__all__ = ["drive", "main", "measure"]


async def drive(app: Any, batches: int, requests: int, warmup: int) -> tuple[list[int], int]:
    """Send ``warmup`` then ``batches`` x ``requests`` requests; batch times (ns) and failures."""
    import httpx

    paths = [request_path(i) for i in range(requests)]
    failures = 0
    elapsed: list[int] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for i in range(warmup):
            response = await client.get(paths[i % requests])
            failures += response.status_code != 200
        # Start every timed batch from the same heap state, not from the warmup's garbage.
        gc.collect()
        for _ in range(batches):
            start = time.perf_counter_ns()
            for path in paths:
                response = await client.get(path)
                failures += response.status_code != 200
            elapsed.append(time.perf_counter_ns() - start)
    return elapsed, failures


def measure(
    setup: str,
    options: Options,
    batches: int,
    requests: int,
    warmup: int,
    drain_timeout: float,
) -> dict[str, Any]:
    configured = SETUPS[setup](options)
    app = create_app()
    elapsed, failures = asyncio.run(drive(app, batches, requests, warmup))
    start = time.perf_counter()
    configured.drain(drain_timeout)
    drain_s = time.perf_counter() - start
    per_request = [ns / requests / 1000 for ns in elapsed]
    # ru_maxrss is in KiB on Linux.
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "setup": setup,
        "rate": options.rate,
        "mode": options.mode if setup == "otel_sentry" else None,
        "batches": batches,
        "requests_per_batch": requests,
        "warmup": warmup,
        "requests_total": warmup + batches * requests,
        "failures": failures,
        "batch_us": [round(us, 2) for us in per_request],
        "median_us": round(statistics.median(per_request), 2),
        "rss_mib": round(rss_mib, 1),
        "drain_s": round(drain_s, 3),
        "delivers": configured.delivers,
        "produced": configured.produced().to_json(),
        "notes": configured.notes,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__)
    parser.add_argument("--setup", required=True, choices=sorted(SETUPS))
    parser.add_argument("--rate", type=float, default=1.0, help="traces sample rate")
    parser.add_argument("--mode", default="sentry", help="otel_sentry export: sentry or otlp")
    parser.add_argument("--sink-dsn", default="", help="DSN of the running sink")
    parser.add_argument("--requests", type=int, default=1000, help="requests per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="seconds the SDKs get to flush at the end"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.requests < 1 or args.batches < 1 or args.warmup < 0:
        print("--requests and --batches must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    options = Options(rate=args.rate, mode=args.mode, sink_dsn=args.sink_dsn)
    result = measure(
        args.setup, options, args.batches, args.requests, args.warmup, args.drain_timeout
    )
    # The runner reads the last line of stdout; SDK chatter goes elsewhere or comes before it.
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
