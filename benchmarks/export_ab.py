"""The export of one transaction, in CPU on the thread that does it, against an earlier revision.

The request-overhead table (``benchmarks.run``) and the distant-ingest rows measure the whole
process on a shared machine, where the host's speed moves between runs by more than a change to
the export path saves. This measures only that path, the same way for both revisions::

    python -m benchmarks.export_ab --baseline 0cb8c49 --rounds 4

A worker (``--worker``) inits ``otel_sentry`` with the sink's DSN, serves 100 requests of the
FastAPI app of ``benchmarks/app.py`` in-process and keeps the segments (the root span of each
request) that reached the exporter. Then the transport's wire is replaced by one that answers
200 at once on the calling thread, so what is timed is what the export thread does per
transaction (build, scrub, serialize, compress, the transport's bookkeeping) plus the handling
of Sentry's answer, without the socket and the event loop, which are the same code in both
revisions. It sends 9 x 2000 transactions from those segments and prints the lowest and the
median of the 9 (thread CPU, ``time.thread_time``), and the Python function calls per
transaction (``cProfile``, 1000 more), a count the machine's noise does not move.

Each round runs both revisions in fresh processes, alternating who goes first; the baseline runs
from ``git archive REV`` with today's ``benchmarks/`` (``distant.Baseline``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
import time
from typing import Any

from benchmarks.ab import compare

__all__ = ["main"]


class _Answered:
    """A wire that answers every request 200 at once, on the caller's thread."""

    outstanding = 0

    def __init__(self, response: Any) -> None:
        self._response = response

    def submit(self, request: Any) -> None:
        request.done(self._response, None)

    def close(self, timeout: float = 1.0) -> list[Any]:
        return []

    def after_fork(self) -> None:
        return None


def _worker(dsn: str) -> None:
    import httpx
    import sentry_sdk

    import otel_sentry
    from benchmarks.app import create_app, request_path
    from otel_sentry._internal.sentry import span_processor
    from otel_sentry._internal.sentry.wire import Response
    from otel_sentry._internal.sentry.wire.message import Headers

    exporter_class = span_processor.TransactionExporter
    original = exporter_class._send
    caught: list[tuple[Any, Any]] = []

    def keep(self: Any, segment: Any) -> None:
        caught.append((self, segment))
        original(self, segment)

    exporter_class._send = keep  # type: ignore[method-assign]
    otel_sentry.init(dsn=dsn, traces_sample_rate=1.0, instrument=("fastapi",), load_shedding=False)
    app = create_app()

    async def serve() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for i in range(100):
                await client.get(request_path(i))

    asyncio.run(serve())
    otel_sentry.flush(10)
    exporter_class._send = original  # type: ignore[method-assign]
    exporter = caught[-1][0]
    segments = [segment for _, segment in caught[-100:]]
    transport = sentry_sdk.get_client().transport
    transport.wire = _Answered(Response(200, Headers(), b"{}"))  # type: ignore[union-attr]
    send = exporter._send
    per_tx = []
    for _ in range(9):
        began = time.thread_time()
        for k in range(2000):
            send(segments[k % 100])
        per_tx.append((time.thread_time() - began) / 2000 * 1e6)
    profile = cProfile.Profile()
    profile.enable()
    for k in range(1000):
        send(segments[k % 100])
    profile.disable()
    calls = pstats.Stats(profile).total_calls / 1000  # type: ignore[attr-defined]
    print(
        json.dumps(
            {
                "min_us": min(per_tx),
                "median_us": statistics.median(per_tx),
                "calls": calls,
                "file": otel_sentry.__file__,
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export_ab", description=__doc__)
    parser.add_argument("--baseline", required=True, help="the revision to compare against")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    name, seen = compare(
        args.baseline,
        args.rounds,
        "benchmarks.export_ab",
        lambda dsn: [dsn],
        lambda r: (
            f"{r['min_us']:.1f} us/transaction (median of 9 {r['median_us']:.1f}), "
            f"{r['calls']:.0f} calls/transaction"
        ),
    )
    ours = statistics.median(r["min_us"] for r in seen["this tree"])
    theirs = statistics.median(r["min_us"] for r in seen[name])
    print(
        f"{args.rounds} rounds, median of each process's lowest: this tree {ours:.1f} "
        f"us/transaction, {name} {theirs:.1f}; ratio {ours / theirs:.3f}x; calls "
        f"{seen['this tree'][-1]['calls']:.0f} against {seen[name][-1]['calls']:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
