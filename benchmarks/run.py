"""``python -m benchmarks.run``: every setup, each in its own process, against one sink.

Setups run one after another (never two at once: they would share the two cores), repeats are
interleaved so that drift on a shared machine spreads over all setups, and the sink is cleared
before each run so its counters belong to that run alone::

    python -m benchmarks.run --quick                       # smoke run, writes nothing
    python -m benchmarks.run --repeat 3                    # full run; updates BENCHMARKS.md
    python -m benchmarks.run --setups bare,otel_otlp --rates 1.0
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from benchmarks.cpu import ForeignCpu
from benchmarks.report import (
    BUSY_CORES,
    Measurement,
    RunKey,
    acceptance,
    render_section,
    render_table,
    summarize,
    write_section,
)
from benchmarks.setups import RATE_SUBSET, SETUPS
from benchmarks.sink import SinkProcess

__all__ = ["build_parser", "main", "plan"]

REPO = Path(__file__).resolve().parent.parent
MODES = ("sentry", "otlp")
VERSIONED = (
    "sentry-sdk",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-fastapi",
    "opentelemetry-instrumentation-asgi",
    "opentelemetry-exporter-otlp-proto-http",
    "fastapi",
    "starlette",
    "httpx",
)


def plan(setups: list[str], rates: list[float], modes: list[str]) -> list[RunKey]:
    """Every setup at rate 1.0 (but keep_errors); at other rates the anchors and our setups."""
    keys: list[RunKey] = []
    ours = ("otel_sentry", "otel_sentry_contrib", "otel_sentry_keep_errors")
    for rate in rates:
        for setup in setups:
            if rate < 1.0 and setup not in (*RATE_SUBSET, *ours):
                continue
            if rate >= 1.0 and setup == "otel_sentry_keep_errors":
                continue  # everything is sampled: the same as otel_sentry
            if setup in ours:
                keys += [RunKey(setup, rate, mode) for mode in modes]
            else:
                keys.append(RunKey(setup, rate))
    return keys


def worker_env() -> dict[str, str]:
    """The environment without SENTRY_* and OTEL_* settings, so only the setup configures SDKs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def wait_for_quiet(sink: SinkProcess, limit_s: float) -> float | None:
    """Wait (up to ``limit_s``) for a second in which other processes leave the cores alone.

    Returns the foreign load of the last second sampled, in cores.
    """
    deadline = time.monotonic() + limit_s
    while True:
        with ForeignCpu(sink.pid) as sample:
            time.sleep(1.0)
        if sample.cores is None or sample.cores <= BUSY_CORES or time.monotonic() >= deadline:
            return sample.cores


def measure_quietly(
    key: RunKey,
    repeat: int,
    sink: SinkProcess,
    args: argparse.Namespace,
    on_time: Callable[[], bool],
) -> Measurement:
    """Run one setup; run it again (up to ``--retry-busy`` times) if it had to share the CPU.

    Waiting and retrying stop while ``on_time()`` is false, so a machine that never goes quiet
    costs at most the time budget, not a retry per run.
    """
    retried = 0
    while True:
        if args.quiet_wait > 0 and on_time():
            wait_for_quiet(sink, args.quiet_wait)
        m = run_one(key, repeat, sink, args)
        busy = m.foreign_cores is not None and m.foreign_cores > BUSY_CORES
        if not busy or retried >= args.retry_busy or not on_time():
            m.retried = retried
            return m
        retried += 1
        print(
            f"  {key.label} rate={key.rate:g}: other processes used {m.foreign_cores:.2f} cores "
            "meanwhile; measuring again",
            file=sys.stderr,
        )


def run_one(key: RunKey, repeat: int, sink: SinkProcess, args: argparse.Namespace) -> Measurement:
    sink.clear()
    command = [sys.executable, "-m", "benchmarks.worker", "--setup", key.setup]
    command += ["--rate", str(key.rate), "--mode", key.mode or "sentry", "--sink-dsn", sink.dsn]
    command += ["--requests", str(args.requests), "--batches", str(args.batches)]
    command += ["--warmup", str(args.warmup), "--drain-timeout", str(args.drain_timeout)]
    # Generous: a slow setup at ~10 ms/request, plus its drain, plus start-up.
    timeout = 60 + args.drain_timeout + 0.01 * args.requests * args.batches
    measurement = Measurement(key, repeat)
    start = time.perf_counter()
    foreign = ForeignCpu(sink.pid)
    try:
        with foreign:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=worker_env(),
                cwd=REPO,
                check=False,
            )
    except subprocess.TimeoutExpired:
        measurement.error = f"timed out after {timeout:.0f} s"
    else:
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or "no output"
            measurement.error = f"exit {done.returncode}: {tail}"
        else:
            measurement.worker = json.loads(lines[-1])
    measurement.wall_s = time.perf_counter() - start
    measurement.foreign_cores = foreign.cores
    # The worker has exited, so nothing more of its run can arrive.
    measurement.sink = sink.stats()
    return measurement


def _progress(index: int, total: int, m: Measurement) -> str:
    head = f"[{index}/{total}] {m.key.label} rate={m.key.rate:g}"
    if not m.ok or m.worker is None:
        return f"{head}: FAILED ({m.error})"
    counts = (m.sink or {}).get("counts") or {}
    arrived = (counts.get("items") or {}).get("transaction", 0)
    spans = (counts.get("categories") or {}).get("span", 0) + counts.get("otlp_spans", 0)
    return (
        f"{head}: {m.worker['median_us']:.0f} us/request, {m.worker['requests_total']} requests, "
        f"{arrived} tx / {spans} spans arrived, drain {m.worker['drain_s']:.2f} s "
        f"({m.wall_s:.1f} s{_foreign(m.foreign_cores)})"
    )


def _foreign(cores: float | None) -> str:
    return "" if cores is None else f", other processes used {cores:.2f} cores"


def context(
    args: argparse.Namespace, wall_s: float, measurements: list[Measurement]
) -> list[tuple[str, str]]:
    versions = []
    for name in VERSIONED:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            models = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("versions", ", ".join(versions)),
        ("machine", f"nproc {len(os.sched_getaffinity(0))}, {cpu}, {platform.system()}"),
        (
            "load",
            f"{args.batches} batches x {args.requests} requests after {args.warmup} warmup, "
            f"{args.repeat} repeat(s) interleaved; whole run {wall_s:.0f} s",
        ),
        ("noise", _noise(measurements)),
    ]


def _noise(measurements: list[Measurement]) -> str:
    cores = [m.foreign_cores for m in measurements if m.foreign_cores is not None]
    if not cores:
        return "CPU used by other processes not measured (no /proc)"
    return (
        f"CPU used by other processes during the runs: median {statistics.median(cores):.2f}, "
        f"max {max(cores):.2f} cores"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Request overhead and delivery of otel-sentry next to its anchors.",
    )
    parser.add_argument(
        "--setups",
        default=",".join(SETUPS),
        help=f"comma-separated, from: {', '.join(SETUPS)} (default: all)",
    )
    parser.add_argument("--skip", default="", help="comma-separated setups to leave out")
    parser.add_argument("--rates", default="1.0,0.1", help="sample rates (default 1.0,0.1)")
    parser.add_argument("--modes", default=",".join(MODES), help="otel_sentry export modes")
    parser.add_argument("--requests", type=int, default=1000, help="requests per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved repeats of the plan")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--quick", action="store_true", help="2 batches x 200 requests; does not write the table"
    )
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update the marked section of --output (default: yes, except with --quick)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="before each run, wait up to this many seconds for other processes to go idle",
    )
    parser.add_argument(
        "--retry-busy",
        type=int,
        default=1,
        help="measure a setup again (this many times at most) if other processes took CPU",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=480.0,
        help="seconds the whole run should take; waiting and retrying stop when behind it",
    )
    parser.add_argument("--json", type=Path, help="also write every raw measurement here")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when an acceptance check fails"
    )
    return parser


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.batches, args.warmup = 200, 2, 50
    skip = set(_split(args.skip))
    setups = [s for s in _split(args.setups) if s not in skip]
    unknown = sorted(set(setups) - set(SETUPS))
    if unknown:
        parser.error(f"unknown setup(s) {', '.join(unknown)}; choose from {', '.join(SETUPS)}")
    modes = _split(args.modes)
    if set(modes) - set(MODES):
        parser.error(f"--modes takes {' and/or '.join(MODES)}")
    try:
        rates = [float(r) for r in _split(args.rates)]
    except ValueError:
        parser.error("--rates takes comma-separated numbers in (0, 1], e.g. 1.0,0.1")
    if not rates or any(not 0 < r <= 1 for r in rates):
        parser.error("--rates takes comma-separated numbers in (0, 1], e.g. 1.0,0.1")
    if args.repeat < 1 or args.requests < 1 or args.batches < 1:
        parser.error("--repeat, --requests and --batches must be at least 1")
    keys = plan(setups, rates, modes)
    if not keys:
        parser.error("nothing to run: no setup of --setups is measured at these --rates")
    total: int = len(keys) * args.repeat

    measurements: list[Measurement] = []
    started = time.perf_counter()
    with SinkProcess(env=worker_env()) as sink:
        print(f"sink at {sink.url}; {total} run(s)", file=sys.stderr)

        def on_time() -> bool:
            # Ahead of a schedule that spreads --budget evenly over the runs.
            share = float(args.budget) * (len(measurements) + 1) / total
            return time.perf_counter() - started < share

        for repeat in range(args.repeat):
            for key in keys:
                m = measure_quietly(key, repeat, sink, args, on_time)
                measurements.append(m)
                print(_progress(len(measurements), total, m), file=sys.stderr, flush=True)
    wall_s = time.perf_counter() - started

    rows = summarize(measurements)
    checks = acceptance(rows)
    command = shlex.join(["python", "-m", "benchmarks.run", *argv])
    print(render_table(rows))
    print()
    for check in checks:
        print(check.line())
    notes = [f"{row.key.label} rate={row.key.rate:g}: {note}" for row in rows for note in row.notes]
    if notes:
        print("\nnotes:\n" + "\n".join(notes))
    print(f"\nwhole run: {wall_s:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps([asdict(m) for m in measurements], indent=1), encoding="utf-8"
        )
    write = (not args.quick) if args.write is None else args.write
    if write:
        write_section(
            args.output, render_section(command, context(args, wall_s, measurements), rows, checks)
        )
        print(f"updated {args.output}")
    if args.strict and any(check.passed is False for check in checks):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
