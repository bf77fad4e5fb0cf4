"""Redis cache spans: what the cache layer adds to one GET, next to the anchors, in one run.

Every setup sends ``GET`` to a real ``redis-server`` on 127.0.0.1 (one round trip, sequential,
inside a parent span as in a request) and is timed per command. Setups are switched in one
process and interleaved per repeat, so they share the same machine state:

- ``plain``: redis-py, uninstrumented;
- ``contrib``: the official OpenTelemetry redis instrumentation, SDK provider recording every
  span, no processor (the anchor: what any OTel setup pays for a Redis command);
- ``cache_hit``: ``contrib`` plus ``instrument_redis_cache(["cache:"])``, GET of a cached key:
  a ``cache.get`` span around the command span; the difference to ``contrib`` is our layer;
- ``cache_other``: the same, GET of a key outside the prefixes: what every other command pays;
- ``sentry_native`` (measured last, once per repeat after the others, because it patches
  redis-py for good): sentry_sdk's own ``RedisIntegration(cache_prefixes=["cache:"])`` with
  ``traces_sample_rate=1.0`` inside a transaction, envelopes dropped.

    python -m benchmarks.db_cache            # writes the `db_cache` section of BENCHMARKS.md
    python -m benchmarks.db_cache --quick    # smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.report import replace_section

START_MARKER = "<!-- bench:db_cache:start -->"
END_MARKER = "<!-- bench:db_cache:end -->"
_ROOT = Path(__file__).resolve().parents[1]
_SETUPS = ("plain", "contrib", "cache_hit", "cache_other")
_VALUE = b'{"id": 1, "name": "widget", "price": 1999}'


class _Switch:
    """Turns the instrumentations on and off between batches in one process."""

    def __init__(self) -> None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.sdk.trace import TracerProvider

        self.provider = TracerProvider()  # records every span, exports nowhere
        self.redis = RedisInstrumentor()

    def use(self, setup: str) -> None:
        from otel_sentry._internal.instrument.cache import (
            instrument_redis_cache,
            uninstrument_redis_cache,
        )

        uninstrument_redis_cache()
        if self.redis.is_instrumented_by_opentelemetry:
            self.redis.uninstrument()
        if setup != "plain":
            self.redis.instrument(tracer_provider=self.provider)
        if setup.startswith("cache"):
            instrument_redis_cache(["cache:"], tracer_provider=self.provider)


def _time_gets(client: Any, key: str, n: int, parent: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) microseconds per GET over ``n`` sequential commands.

    CPU time is this process's own work (the client and every hook), without the wait for
    redis-server or for a core another process holds, so it compares setups on a busy machine.
    """
    get = client.get
    with parent():
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(n):
            get(key)
        cpu, wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
    return wall / n / 1000, cpu / n / 1000


def _sentry_native() -> Callable[[], Any]:
    import sentry_sdk
    from sentry_sdk.integrations.redis import RedisIntegration
    from sentry_sdk.transport import Transport

    class _Drop(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            pass

    sentry_sdk.init(
        dsn="https://key@o1.ingest.sentry.io/1",
        traces_sample_rate=1.0,
        transport=_Drop,
        integrations=[RedisIntegration(cache_prefixes=["cache:"])],
        default_integrations=False,
    )
    # sentry_sdk caps a transaction at 1000 spans; a fresh transaction per batch keeps
    # every GET recorded the same way.
    return lambda: sentry_sdk.start_transaction(name="bench", op="task")


Results = dict[str, dict[str, list[float]]]


def run(n: int, rounds: int) -> Results:
    import redis

    from tests.support.servers import RedisServer

    results: Results = {s: {"wall": [], "cpu": []} for s in (*_SETUPS, "sentry_native")}

    def keep(setup: str, measured: tuple[float, float]) -> None:
        results[setup]["wall"].append(measured[0])
        results[setup]["cpu"].append(measured[1])

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        client.set("cache:item:1", _VALUE)
        client.set("other:item:1", _VALUE)
        switch = _Switch()
        tracer = switch.provider.get_tracer("bench")

        def otel_parent() -> Any:
            return tracer.start_as_current_span("request")

        for round_ in range(rounds + 1):
            # Rotate the order each round so no setup always runs after the same one.
            shift = round_ % len(_SETUPS)
            for setup in _SETUPS[shift:] + _SETUPS[:shift]:
                switch.use(setup)
                key = "other:item:1" if setup == "cache_other" else "cache:item:1"
                measured = _time_gets(client, key, n, otel_parent)
                if round_:  # round 0 warms up
                    keep(setup, measured)
        switch.use("plain")
        parent = _sentry_native()
        for round_ in range(rounds + 1):
            # At most 900 GETs per transaction: sentry_sdk records at most 1000 spans in one.
            measured = _time_gets(client, "cache:item:1", min(n, 900), parent)
            if round_:
                keep("sentry_native", measured)
        client.close()
    return results


def render(results: Results, n: int, rounds: int) -> str:
    wall = {k: statistics.median(v["wall"]) for k, v in results.items() if v["wall"]}
    cpu = {k: statistics.median(v["cpu"]) for k, v in results.items() if v["cpu"]}
    anchor = cpu["contrib"] - cpu["plain"]
    lines = [
        START_MARKER,
        "## db_cache: Redis cache spans (`python -m benchmarks.db_cache`)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"redis-py {version('redis')}, opentelemetry-instrumentation-redis "
        f"{version('opentelemetry-instrumentation-redis')}, sentry-sdk {version('sentry-sdk')}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end; "
        f"{rounds} rounds x {n} sequential GETs per setup against a local redis-server, setups "
        "interleaved per round; medians over rounds. CPU = this process's own time per GET "
        "(client plus hooks, without the wait for the server), the comparison that holds on a "
        "shared machine; wall time includes the round trip.",
        "",
        "| setup | CPU us per GET | CPU over plain | vs contrib's cost | wall us per GET |",
        "|---|---:|---:|---:|---:|",
    ]
    for setup, value in cpu.items():
        over = value - cpu["plain"]
        ratio = f"{over / anchor:.2f}x" if anchor > 0 and setup != "plain" else "-"
        lines.append(f"| `{setup}` | {value:.1f} | {over:+.1f} | {ratio} | {wall[setup]:.1f} |")
    ours = cpu["cache_hit"] - cpu["contrib"]
    passthrough = cpu["cache_other"] - cpu["contrib"]
    native = cpu["sentry_native"] - cpu["plain"]
    lines += [
        "",
        f"Our cache layer: {ours:+.1f} us CPU per cached GET on top of the contrib command span "
        f"({anchor:.1f} us, the anchor), {passthrough:+.1f} us per command on a key outside the "
        f"prefixes. Cache span plus command span together: "
        f"{cpu['cache_hit'] - cpu['plain']:.1f} us, against {native:.1f} us for sentry_sdk's "
        "own Redis integration recording the same two spans.",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run; writes nothing")
    parser.add_argument("--n", type=int, default=1000, help="GETs per setup and round")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    n, rounds = (200, 2) if args.quick else (args.n, args.rounds)
    started = time.monotonic()
    results = run(n, rounds)
    section = render(results, n, rounds)
    print(section)
    print(f"took {time.monotonic() - started:.0f}s")
    if not args.quick:
        replace_section(_ROOT / "BENCHMARKS.md", section, START_MARKER, END_MARKER)


if __name__ == "__main__":
    main()
