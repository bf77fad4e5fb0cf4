"""What transaction profiling (``profiles_sample_rate=1.0``) costs a FastAPI request, ours against
sentry_sdk's own profiler, in one run.

Both use the same profiler (sentry_sdk's scheduler thread sampling every thread's stack 101
times a second, ``Profile.to_json``); ours starts it from OpenTelemetry root spans and builds the
``profile`` item on the export thread (``otel_sentry/_internal/sentry/profiles.py``). Setups,
each in a fresh process, alternating order per round, against one sink (the project's inbox in
its own process)::

    python -m benchmarks.profiles --rounds 3

- ``bare``: FastAPI alone;
- ``otel_sentry``: ``otel_sentry.init`` (traces 1.0), no profiling;
- ``otel_sentry_profiles``: the same with ``profiles_sample_rate=1.0``;
- ``sentry_sdk``: ``sentry_sdk.init`` (traces 1.0, its FastAPI integration), no profiling;
- ``sentry_sdk_profiles``: the same with ``profiles_sample_rate=1.0``.

Two routes: ``items`` (``benchmarks/app.py``'s JSON route, ~1 ms: most profiles get fewer than
two samples and are dropped as sentry_sdk drops them) and ``work`` (~20 ms of CPU in the route:
every request sends a profile). A worker drives the app in-process (``httpx.ASGITransport``),
warms up, then times batches; printed: the median batch's process CPU (every thread, the
profiler's and the export thread's included) and wall time per request, the profiles the sink
received, then per route the medians over the rounds as ratios to the same run's anchors.
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
from typing import Any

from benchmarks.distant import REPO, worker_env
from benchmarks.sink import SinkProcess

__all__ = ["main"]

SETUPS = ("bare", "otel_sentry", "otel_sentry_profiles", "sentry_sdk", "sentry_sdk_profiles")
# route -> (warm-up requests, batches, requests per batch)
ROUTES = {"items": (300, 5, 500), "work": (20, 5, 60)}
WORK_MS = 20


def _setup(name: str, dsn: str) -> None:
    rate = 1.0 if name.endswith("_profiles") else None
    if name.startswith("otel_sentry"):
        import otel_sentry

        otel_sentry.init(
            dsn=dsn, traces_sample_rate=1.0, instrument=("fastapi",), profiles_sample_rate=rate
        )
    elif name.startswith("sentry_sdk"):
        import sentry_sdk
        from sentry_sdk.integrations.httpx import HttpxIntegration

        # The httpx client is the load generator, not a traced caller (as benchmarks/setups.py).
        sentry_sdk.init(
            dsn=dsn,
            traces_sample_rate=1.0,
            disabled_integrations=[HttpxIntegration()],
            profiles_sample_rate=rate,
        )


def _shutdown(name: str) -> None:
    if name.startswith("otel_sentry"):
        import otel_sentry

        otel_sentry.shutdown(30)
    elif name.startswith("sentry_sdk"):
        import sentry_sdk

        sentry_sdk.get_client().close(timeout=30)


def _app(route: str) -> tuple[Any, str]:
    from benchmarks.app import create_app

    app = create_app()
    if route == "items":
        return app, "/items/7"

    def crunch(ms: int) -> int:
        # This thread's CPU: the profiler's and exporters' threads must not shorten the work.
        until, total = time.thread_time() + ms / 1000, 0
        while time.thread_time() < until:
            total += sum(i * i for i in range(500))
        return total

    @app.get("/work")
    async def work() -> dict[str, int]:
        return {"total": crunch(WORK_MS)}

    return app, "/work"


def _worker(name: str, route: str, dsn: str) -> None:
    import httpx

    _setup(name, dsn)
    app, path = _app(route)
    warmup, batches, size = ROUTES[route]

    async def drive() -> dict[str, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(warmup):
                await client.get(path)
            cpu, wall = [], []
            for _ in range(batches):
                began, cpu_began = time.perf_counter(), time.process_time()
                for _ in range(size):
                    await client.get(path)
                wall.append((time.perf_counter() - began) * 1e6 / size)
                cpu.append((time.process_time() - cpu_began) * 1e6 / size)
        return {"cpu_us": statistics.median(cpu), "wall_us": statistics.median(wall)}

    result = asyncio.run(drive())
    _shutdown(name)
    print(json.dumps(result))


def _run(sink: SinkProcess, name: str, route: str) -> dict[str, float]:
    sink.clear()
    env = worker_env(REPO)
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="profiles-bench-")  # its own exit spool
    command = [sys.executable, "-m", "benchmarks.profiles", "--worker", name, route, sink.dsn]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} {route} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    items = sink.stats()["counts"]["items"]
    result["profiles"] = float(items.get("profile", 0))
    result["transactions"] = float(items.get("transaction", 0))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], argv[2], argv[3])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiles", description=__doc__)
    parser.add_argument("--routes", default="items,work")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    routes, setups = args.routes.split(","), args.setups.split(",")
    seen: dict[tuple[str, str], list[dict[str, float]]] = {
        (r, s): [] for r in routes for s in setups
    }
    with SinkProcess() as sink:
        for round_ in range(1, args.rounds + 1):
            for route in routes:
                order = setups if round_ % 2 else setups[::-1]  # alternate who goes first
                for name in order:
                    result = _run(sink, name, route)
                    seen[(route, name)].append(result)
                    print(
                        f"round {round_} {route:5} {name:21} cpu {result['cpu_us']:7.0f} "
                        f"wall {result['wall_us']:7.0f} us/request; received "
                        f"{result['transactions']:.0f} transactions, {result['profiles']:.0f} "
                        "profiles",
                        flush=True,
                    )
    for route in routes:
        medians = {
            name: {
                k: statistics.median(r[k] for r in seen[(route, name)])
                for k in ("cpu_us", "wall_us")
            }
            for name in setups
        }
        print(f"\nroute {route}, {args.rounds} rounds, medians (us/request) and same-run ratios:")
        for name in setups:
            m = medians[name]
            ratios = "  ".join(
                f"/{anchor} cpu {m['cpu_us'] / medians[anchor]['cpu_us']:.3f}x "
                f"wall {m['wall_us'] / medians[anchor]['wall_us']:.3f}x"
                for anchor in ("bare", "otel_sentry", "sentry_sdk_profiles")
                if anchor in medians and anchor != name
            )
            print(f"  {name:21} cpu {m['cpu_us']:7.0f} wall {m['wall_us']:7.0f}  {ratios}")
        if {"otel_sentry", "otel_sentry_profiles", "sentry_sdk", "sentry_sdk_profiles"} <= set(
            medians
        ):
            ours = medians["otel_sentry_profiles"]["cpu_us"] - medians["otel_sentry"]["cpu_us"]
            theirs = medians["sentry_sdk_profiles"]["cpu_us"] - medians["sentry_sdk"]["cpu_us"]
            print(
                f"  profiling's own CPU: ours +{ours:.0f} us/request, sentry_sdk's "
                f"+{theirs:.0f} us/request"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
