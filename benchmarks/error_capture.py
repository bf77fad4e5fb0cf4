"""What one unhandled error costs the process that raised it, and its request's latency.

``benchmarks/soak_app.py`` under uvicorn, in its own process, pointed at the inbox (its own
process too): ``--n`` sequential ``GET /fail`` (an exception through FastAPI's middleware,
captured, logged by uvicorn) and as many ``GET /items/{id}``; the app process's CPU time over
each batch (``/proc``), so the difference is what the error costs beyond a normal request.
Setups, same run:

- ``sentry_sdk``: sentry_sdk alone with its FastAPI integration, no tracing (the anchor);
- ``otel_sentry, sdk capture``: otel-sentry with sentry_sdk's own way of building the event
  (source lines read on the request thread; the server's log line of the error built again,
  then dropped by DedupeIntegration);
- ``otel_sentry``: as shipped (sentry/capture.py, sentry/dedupe.py).

    python -m benchmarks.error_capture            # writes its section of BENCHMARKS.md
    python -m benchmarks.error_capture --n 20     # quicker, writes nothing
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.cpu import process_seconds
from benchmarks.report import replace_section
from benchmarks.sink import SinkProcess
from benchmarks.soak import _Client, _start_app

START_MARKER = "<!-- bench:error_capture:start -->"
END_MARKER = "<!-- bench:error_capture:end -->"

SETUPS: dict[str, dict[str, str]] = {
    "sentry_sdk": {"SOAK_SENTRY_SDK": "1"},
    "otel_sentry, sdk capture": {"SOAK_SDK_CAPTURE": "1"},
    "otel_sentry": {},
}


def _batch(client: _Client, pid: int, paths: list[str]) -> tuple[float, list[float]]:
    """CPU seconds of the app over the batch, and each request's latency."""
    latencies = []
    before = process_seconds(pid)
    for path in paths:
        started = time.perf_counter()
        status = client.get(path, close=path == "/fail")
        latencies.append(time.perf_counter() - started)
        if status not in (200, 500):
            raise RuntimeError(f"{path} answered {status}")
    time.sleep(0.3)  # let the sender thread finish this batch's envelopes (its CPU counts)
    return process_seconds(pid) - before, latencies


def measure(sink: SinkProcess, setup: str, n: int) -> dict[str, Any]:
    os.environ.update(SETUPS[setup])
    try:
        proc, url, log = _start_app(sink.dsn, None)
    finally:
        for key in SETUPS[setup]:
            os.environ.pop(key, None)
    try:
        client = _Client(url)
        for i in range(10):  # warm: first-use costs are not what an error costs
            client.get("/fail", close=True)
            client.get(f"/items/{i}")
        time.sleep(1.0)
        ok_cpu, ok_lat = _batch(client, proc.pid, [f"/items/{i}" for i in range(n)])
        fail_cpu, fail_lat = _batch(client, proc.pid, ["/fail"] * n)
        client.close()
        return {
            "setup": setup,
            "ok_ms": ok_cpu * 1000 / n,
            "fail_ms": fail_cpu * 1000 / n,
            "error_ms": (fail_cpu - ok_cpu) * 1000 / n,
            "ok_p50_ms": statistics.median(ok_lat) * 1000,
            "fail_p50_ms": statistics.median(fail_lat) * 1000,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


def render(rows: list[dict[str, Any]], n: int, elapsed: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    anchor = next(r for r in rows if r["setup"] == "sentry_sdk")
    lines = [
        START_MARKER,
        "## Error capture: what one unhandled error costs",
        "",
        f"`python -m benchmarks.error_capture` ({stamp}, {elapsed:.0f} s): the soak app under "
        f"uvicorn, {n} sequential `GET /fail` (raised through FastAPI's middleware, captured, "
        f"logged by uvicorn) and {n} `GET /items/{{id}}`; CPU of the app process per request "
        "(all its threads), error = failing minus normal. Anchor: sentry_sdk alone with its "
        "FastAPI integration, same run.",
        "",
        "| setup | CPU per normal request ms | CPU per failing request ms | the error's own ms | "
        "vs anchor | p50 failing request ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["error_ms"] / anchor["error_ms"] if anchor["error_ms"] > 0 else float("nan")
        lines.append(
            f"| {r['setup']} | {r['ok_ms']:.2f} | {r['fail_ms']:.2f} | {r['error_ms']:.2f} | "
            f"{ratio:.2f}x | {r['fail_p50_ms']:.1f} |"
        )
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.error_capture", description=__doc__)
    parser.add_argument("--n", type=int, default=150, help="requests per batch")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with SinkProcess() as sink:
        rows = [measure(sink, setup, args.n) for setup in SETUPS]
    for row in rows:
        print(row, flush=True)
    section = render(rows, args.n, time.monotonic() - started)
    print(section)
    if args.n >= 100:
        root = Path(__file__).resolve().parents[1]
        replace_section(root / "BENCHMARKS.md", section, START_MARKER, END_MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
