"""Request CPU of this tree against an earlier revision, in one run: is a change a regression?

The request-overhead table (``benchmarks.run``) compares setups, not revisions, and its medians
move by tens of microseconds between runs on a shared machine. This answers one question with
the noise cancelled as far as it goes: does ``otel_sentry`` at this revision cost a request more
than at ``--baseline REV``? Each round runs both in fresh processes, alternating, against one
sink (the project's inbox in its own process, answering at once)::

    python -m benchmarks.request_ab --baseline bfe4fb0 --rate 0.1 --rounds 5

A worker (``python -m benchmarks.request_ab --worker``) inits ``otel_sentry`` with the sink's DSN
and ``instrument=("fastapi",)``, drives the FastAPI app of ``benchmarks/app.py`` in-process
(``httpx.ASGITransport``) with 500 warm-up requests, then 7 batches of 1000, and prints the
median batch's process CPU and wall time per request (all threads: the request path and the
export of what is sampled). The baseline runs from ``git archive REV`` with today's benchmarks/
(``distant.Baseline``). Printed: both medians per round, and over the rounds the median of each
and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from benchmarks.ab import compare

__all__ = ["main"]


def _worker(dsn: str, rate: float) -> None:
    import httpx

    import otel_sentry
    from benchmarks.app import create_app, request_path

    otel_sentry.init(dsn=dsn, traces_sample_rate=rate, instrument=("fastapi",))
    app = create_app()

    async def drive() -> dict[str, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for i in range(500):
                await client.get(request_path(i))
            cpu, wall = [], []
            for _ in range(7):
                began, cpu_began = time.perf_counter(), time.process_time()
                for i in range(1000):
                    await client.get(request_path(i))
                wall.append((time.perf_counter() - began) * 1000)  # us per request
                cpu.append((time.process_time() - cpu_began) * 1000)
        return {"cpu_us": statistics.median(cpu), "wall_us": statistics.median(wall)}

    result = asyncio.run(drive())
    otel_sentry.shutdown(2)
    print(json.dumps({**result, "file": otel_sentry.__file__}))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], float(argv[2]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_ab", description=__doc__)
    parser.add_argument("--baseline", required=True, help="the revision to compare against")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    name, seen = compare(
        args.baseline,
        args.rounds,
        "benchmarks.request_ab",
        lambda dsn: [dsn, str(args.rate)],
        lambda r: f"cpu {r['cpu_us']:.0f} us/request, wall {r['wall_us']:.0f}",
    )
    medians = {
        label: {k: statistics.median(r[k] for r in rows) for k in ("cpu_us", "wall_us")}
        for label, rows in seen.items()
    }
    ours, theirs = medians["this tree"], medians[name]
    print(
        f"rate {args.rate}, {args.rounds} rounds, medians: this tree cpu {ours['cpu_us']:.0f} "
        f"wall {ours['wall_us']:.0f} us/request; {name} cpu {theirs['cpu_us']:.0f} "
        f"wall {theirs['wall_us']:.0f}; ratio cpu {ours['cpu_us'] / theirs['cpu_us']:.3f}x "
        f"wall {ours['wall_us'] / theirs['wall_us']:.3f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
