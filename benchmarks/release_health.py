"""What release health (``sentry/sessions.py``) costs a request, against the same setup without it.

Sessions count every request, sampled or not: the sampler counts an unsampled server request
as it starts, the tracker (a span processor) a sampled one when its span ends. This measures
that in one run, in fresh processes alternating per round, against one sink (the project's
inbox in its own process)::

    python -m benchmarks.release_health --rounds 5

A worker inits ``otel_sentry`` with the sink's DSN, a release and ``instrument=("fastapi",)``,
sessions on or off (``auto_session_tracking=False``), drives ``benchmarks/app.py``'s FastAPI app
in-process (``httpx.ASGITransport``) with 500 warm-up requests, then 7 batches of 1000, and
prints the median batch's process CPU and wall time per request. Printed: each run, then per
rate the medians over the rounds and the ratio on/off (the same-run anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.distant import REPO, worker_env
from benchmarks.sink import SinkProcess

__all__ = ["main"]


def _worker(dsn: str, rate: float, sessions: bool) -> None:
    import httpx

    import otel_sentry
    from benchmarks.app import create_app, request_path

    otel_sentry.init(
        dsn=dsn,
        release="bench@1",
        traces_sample_rate=rate,
        instrument=("fastapi",),
        auto_session_tracking=sessions,
    )
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
    print(json.dumps(result))


def _run(dsn: str, rate: float, sessions: bool) -> dict[str, float]:
    env = worker_env(REPO)
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="release-health-")  # its own exit spool
    command = [sys.executable, "-m", "benchmarks.release_health", "--worker", dsn, str(rate)]
    command.append("on" if sessions else "off")
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=300
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], float(argv[2]), argv[3] == "on")
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.release_health", description=__doc__
    )
    parser.add_argument("--rates", default="0.1,1.0", help="traces_sample_rate values")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    seen: dict[tuple[float, bool], list[dict[str, float]]] = {
        (rate, on): [] for rate in rates for on in (True, False)
    }
    with SinkProcess() as sink:
        for round_ in range(1, args.rounds + 1):
            for rate in rates:
                order = [True, False] if round_ % 2 else [False, True]  # alternate who goes first
                for on in order:
                    result = _run(sink.dsn, rate, on)
                    seen[(rate, on)].append(result)
                    print(
                        f"round {round_} rate {rate} sessions {'on ' if on else 'off'}: "
                        f"cpu {result['cpu_us']:.0f} us/request, wall {result['wall_us']:.0f}",
                        flush=True,
                    )
    for rate in rates:
        on, off = (
            {k: statistics.median(r[k] for r in seen[(rate, s)]) for k in ("cpu_us", "wall_us")}
            for s in (True, False)
        )
        print(
            f"rate {rate}, {args.rounds} rounds, medians: sessions on cpu {on['cpu_us']:.0f} "
            f"wall {on['wall_us']:.0f} us/request; off cpu {off['cpu_us']:.0f} "
            f"wall {off['wall_us']:.0f}; ratio cpu {on['cpu_us'] / off['cpu_us']:.3f}x "
            f"wall {on['wall_us'] / off['wall_us']:.3f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
