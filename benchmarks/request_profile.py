"""Where the request thread's time goes, by who spends it: a sampling profile of one setup.

Runs ``benchmarks.worker`` (the in-process FastAPI requests of ``benchmarks.run``) under py-spy
against the sink, then splits the request thread's samples taken while requests ran by the code
that was running, a standard-library frame counted for the package that called it:

- ``app``: the driver and the app (httpx, Starlette, FastAPI's routing, pydantic, ...), what
  ``bare`` spends too;
- ``floor``: FastAPI's own telemetry and the OpenTelemetry API and SDK under it, what the
  ``otel_native_floor`` setup spends (the server span, recorded, nothing exported);
- ``otel_sentry`` and ``sentry_sdk``: this project and what it calls in sentry_sdk, grouped
  by the outermost function of theirs on the stack (the sampler, the error-capturing
  middleware, ...).

Each share is also given in microseconds per request, scaled so that ``app`` costs what
``--bare-us`` says (``bare``'s us/request from the same run of ``benchmarks.run``): the profiler
slows the process, the shares stay. The export and I/O threads are left out: their cost is
what ``benchmarks.export_ab`` and ``benchmarks.distant`` measure::

    python -m benchmarks.request_profile --setup otel_sentry --rate 0.1 --bare-us 403
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from benchmarks.sink import SinkProcess

__all__ = ["categorize", "main"]

REPO = Path(__file__).resolve().parents[1]
_STDLIB = (sysconfig.get_paths()["stdlib"], "<frozen ")
_OURS = ("otel_sentry", "sentry_sdk")


def _category(frame: str) -> str | None:
    """The frame's category, or None for the standard library (counted for its caller)."""
    path = frame.rpartition(" (")[2]
    if "/otel_sentry/" in path:
        return "otel_sentry"
    if "/sentry_sdk/" in path:
        return "sentry_sdk"
    if "/fastapi/telemetry/" in path or "/opentelemetry/" in path:
        return "floor"
    if "site-packages" in path or path.startswith(str(REPO)):
        return "app"
    if any(marker in path for marker in _STDLIB):
        return None
    return "app"


def categorize(raw: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """py-spy's raw (collapsed) samples: the request thread's total while requests ran, the
    samples per category, and ours per outermost function."""
    total = 0
    categories: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0] or not any("run_until_complete" in f for f in frames):
            continue
        n = int(count)
        total += n
        leaf = len(frames) - 1
        while leaf > 0 and _category(frames[leaf]) is None:
            leaf -= 1
        category = _category(frames[leaf]) or "app"
        categories[category] += n
        if category in _OURS:
            top = leaf
            while top > 1 and _category(frames[top - 1]) in (*_OURS, None):
                top -= 1
            while _category(frames[top]) not in _OURS:
                top += 1
            ours[frames[top].partition(" (")[0]] += n
    return total, categories, ours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.request_profile", description=__doc__
    )
    parser.add_argument("--setup", default="otel_sentry")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--batches", type=int, default=10, help="x 1000 requests")
    parser.add_argument("--bare-us", type=float, help="bare's us/request, to scale the shares")
    parser.add_argument("--raw", help="keep py-spy's raw samples here")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if spy is None:
        parser.error("py-spy is not installed: pip install py-spy (the dev group has it)")
    out = args.raw or os.path.join(tempfile.mkdtemp(prefix="request-profile-"), "samples.raw")
    with SinkProcess() as sink:
        command = [spy, "record", "-r", "500", "--threads", "--full-filenames", "-f", "raw"]
        command += ["-o", out, "--", sys.executable, "-m", "benchmarks.worker"]
        command += ["--setup", args.setup, "--rate", str(args.rate), "--sink-dsn", sink.dsn]
        command += ["--batches", str(args.batches)]
        subprocess.run(command, check=True, cwd=REPO, capture_output=True)
    total, categories, ours = categorize(Path(out).read_text())
    if not total:
        print("no samples of the request thread while requests ran")
        return 1
    scale = args.bare_us / categories["app"] if args.bare_us and categories["app"] else None

    def share(n: int) -> str:
        us = f", ~{n * scale:.0f} us/request" if scale else ""
        return f"{100 * n / total:5.1f}%{us}"

    print(f"{args.setup} at rate {args.rate}: {total} samples of the request thread")
    for name in ("app", "floor", "otel_sentry", "sentry_sdk"):
        print(f"  {name:12s} {share(categories[name])}")
    print("ours, by the outermost function of ours on the stack:")
    for name, n in ours.most_common(12):
        print(f"  {share(n)}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
