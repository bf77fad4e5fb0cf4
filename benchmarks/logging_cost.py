"""What routing a structlog call to Sentry costs, against structlog-sentry, in the same run.

    python -m benchmarks.logging_cost            # ~1 minute; writes its section of BENCHMARKS.md
    python -m benchmarks.logging_cost --quick    # smoke run, writes nothing

One process, one structlog chain (log level, ISO timestamp, JSON to /dev/null) that every setup
shares; each setup adds processors to it. Calls run inside a recording OpenTelemetry span, with
a Sentry client whose transport discards envelopes (so the ERROR path measures building and
serializing the event, not the network), in two phases: the client ``otel_sentry.init()`` sets
up (its ``before_breadcrumb`` passes crumbs through, its ``before_send`` scrubs the event, for both
routers alike), and a bare ``sentry_sdk.init()`` client, which isolates what the routing itself
costs. Rounds of the
setups are interleaved and the median round is reported, so machine noise hits every setup alike.
Times are the thread's CPU time (``time.thread_time_ns``): on a shared machine, wall time mostly
measures how long the scheduler kept the benchmark waiting.

- INFO path: ``log.info("step", ...)`` with three fields: a breadcrumb per call.
- INFO profile: the router's INFO path cut into cumulative steps (``_steps``), each measured as
  its own processor in the same chain, so each step's marginal cost includes the cache and
  call overhead it has in a real chain (isolated micro-benchmarks read about half as much).
- ERROR path: ``log.error(..., exc_info=True)`` on a freshly raised exception (a new object every
  call, or sentry_sdk's dedupe would drop all but the first); the baseline raises and formats
  the same exception without Sentry.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import sentry_sdk
import structlog
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from benchmarks.report import replace_section

_DSN = "http://public@127.0.0.1:9/1"  # never contacted: the transport discards
_ERROR_SETUPS = (
    "structlog",
    "+ add_trace_context + SentryRouter",
    "+ structlog-sentry SentryProcessor",
)
START_MARKER = "<!-- bench:logging:start -->"
END_MARKER = "<!-- bench:logging:end -->"


class DiscardTransport(Transport):
    """Accepts every envelope and drops it; counts them so the run can show events were built."""

    envelopes = 0

    def capture_envelope(self, envelope: Envelope) -> None:
        DiscardTransport.envelopes += 1


def _chain(extra: list[Any], out: Any) -> Any:
    processors = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *extra,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
    return structlog.wrap_logger(structlog.PrintLogger(out), processors=processors).bind(
        logger="bench"
    )


def _setups(out: Any) -> dict[str, Any]:
    from structlog_sentry import SentryProcessor

    from otel_sentry._internal.logs import SentryRouter, add_trace_context

    return {
        "structlog": _chain([], out),
        "+ add_trace_context": _chain([add_trace_context], out),
        "+ SentryRouter": _chain([SentryRouter()], out),
        "+ add_trace_context + SentryRouter": _chain([add_trace_context, SentryRouter()], out),
        "+ structlog-sentry SentryProcessor": _chain(
            [SentryProcessor(level=logging.INFO, event_level=logging.ERROR)], out
        ),
    }


def _steps(out: Any) -> dict[str, Any]:
    """SentryRouter's INFO path, step by step, with its own helpers (logs.py is the reference)."""
    from sentry_sdk.scope import Scope

    from otel_sentry._internal import logs

    router = logs.SentryRouter()

    def level(logger: Any, method_name: str, ed: Any) -> Any:
        skip = ed.pop("sentry_skip", False)
        number = logs._LEVELS.get(ed.get("level") or method_name)
        name = ed.get("logger")
        if number is None or skip or router._ignored_names.get(name, False):
            raise AssertionError("the benchmark's calls are INFO lines of a routed logger")
        return ed

    def client(logger: Any, method_name: str, ed: Any) -> Any:
        level(logger, method_name, ed)
        Scope.get_client().is_active()
        return ed

    def fields(logger: Any, method_name: str, ed: Any) -> Any:
        client(logger, method_name, ed)
        {k: v for k, v in ed.items() if k not in logs._RESERVED}
        return ed

    def breadcrumb(logger: Any, method_name: str, ed: Any) -> Any:
        level(logger, method_name, ed)
        found = Scope.get_client()
        found.is_active()
        data = {k: v for k, v in ed.items() if k not in logs._RESERVED}
        logs._breadcrumb(found, logging.INFO, ed.get("logger"), data, ed)
        return ed

    router(None, "info", {"event": "warm", "logger": "bench"})  # fills the name memo
    return {
        "1 call + skip + level + logger name": _chain([level], out),
        "2 + client lookup": _chain([client], out),
        "3 + field copy": _chain([fields], out),
        "4 + breadcrumb (dict, timestamp, scope, hook, append)": _chain([breadcrumb], out),
    }


def _info(log: Any, n: int) -> None:
    for i in range(n):
        log.info("step", order=i, tenant="acme", cart="c-9")


def _error(log: Any, n: int) -> None:
    for i in range(n):
        try:
            raise ValueError(f"declined {i}")
        except ValueError:
            log.error("charge failed", order=i, tenant="acme", exc_info=True)


def _measure(
    setups: dict[str, Any], run: Callable[[Any, int], None], calls: int, rounds: int
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in setups}
    for log in setups.values():  # warm-up: caches, breadcrumb deque full
        run(log, min(calls, 200))
    for _ in range(rounds):
        for name, log in setups.items():
            start = time.thread_time_ns()
            run(log, calls)
            results[name].append((time.thread_time_ns() - start) / calls / 1000)
    return results


def _rows(results: dict[str, list[float]], anchor: str) -> list[tuple[str, float, float, float]]:
    base = statistics.median(results["structlog"])
    anchor_added = statistics.median(results[anchor]) - base
    rows = []
    for name, samples in results.items():
        median = statistics.median(samples)
        added = median - base
        rows.append((name, median, added, added / anchor_added if anchor_added > 0 else 0.0))
    return rows


def _table(title: str, rows: list[tuple[str, float, float, float]], anchor: str) -> list[str]:
    lines = [
        f"**{title}**",
        "",
        f"| setup | CPU us/call (median round) | added us | x {anchor} |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {m:.2f} | {a:+.2f} | {r:.2f} |" for n, m, a, r in rows]
    return [*lines, ""]


def _profile(
    phase: str, steps: list[tuple[str, float, float, float]], info_rows: list[Any]
) -> list[str]:
    """Marginal cost of each step of SentryRouter's INFO path (cumulative processors)."""
    full = next(r for r in info_rows if r[0] == "+ SentryRouter")
    lines = [
        f"*SentryRouter INFO path, step by step, client of {phase}* (cumulative; each step "
        "measured as its own processor in the same chain)",
        "",
        "| step | added us (cumulative) | this step us |",
        "|---|---|---|",
    ]
    previous = 0.0
    for name, _median, added, _ratio in [*steps, ("= SentryRouter", 0.0, full[2], 0.0)]:
        lines.append(f"| {name} | {added:+.2f} | {added - previous:+.2f} |")
        previous = added
    return [*lines, ""]


def _floor(info: dict[str, list[float]], anchor: str) -> list[str]:
    """Where an INFO line's microseconds go, and why what is left is the floor."""
    rows = {name: added for name, _m, added, _r in _rows(info, anchor)}
    steps = [rows[name] for name in sorted(n for n in rows if n[0].isdigit())]
    share = [b - a for a, b in zip([0.0, *steps], steps, strict=False)]
    theirs = rows[anchor]

    def scaled(us: float) -> str:  # the same share of structlog-sentry's 5-6 us there
        return f"{us / theirs * 5:.1f}-{us / theirs * 6:.1f} us" if theirs > 0 else "n/a"

    return [
        "Where the INFO path's time goes (client of bare sentry_sdk, step table above), and "
        "why the rest is the floor:",
        "",
        f"- call, `sentry_skip`, level and logger name ({share[0]:.1f} us): one processor "
        "call, dict lookups; ignored-logger decisions are memoized per name.",
        f"- client lookup ({share[1]:.1f} us): sentry_sdk looks in the current, isolation and "
        "global scope in turn; it cannot be cached, `init()` or a scope may change it.",
        f"- field copy ({share[2]:.1f} us): the caller's fields, without the line's own keys; "
        "the event dict belongs to the renderer and changes after the router, so the crumb "
        "needs its own dict, taken now.",
        f"- breadcrumb ({share[3]:.1f} us): the crumb dict, a `datetime` taken at call time "
        "(sentry_sdk sorts an event's crumbs by it, next to its integrations' own), the "
        "isolation scope, `before_breadcrumb` (only when the user gave one; this run measured "
        "init() still installing a pass-through), the append and the eviction of the oldest crumb. "
        "This is what "
        "`Scope.add_breadcrumb` does, minus its second client lookup and two dict copies.",
        "",
        f"Closest figure reached: SentryRouter adds {rows['+ SentryRouter']:.2f} us here, "
        f"{rows['+ SentryRouter'] / theirs:.2f} x structlog-sentry in the same run; scaled by "
        f"that ratio, about {scaled(rows['+ SentryRouter'])} on the reference machine, where "
        "structlog-sentry adds 5-6 us. Levers left, each with a cost in behaviour: filtering "
        "the fields only when an event is built (a global event processor; a user's "
        "`before_breadcrumb` would then see the raw keys), and a float timestamp instead of a "
        "datetime (breaks sentry_sdk's sort of mixed crumbs).",
    ]


def _versions() -> str:
    names = ("structlog", "structlog-sentry", "sentry-sdk", "opentelemetry-sdk")
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; writes nothing")
    parser.add_argument("--output", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    info_calls, info_rounds = (1000, 3) if args.quick else (5000, 7)
    error_calls, error_rounds = (20, 3) if args.quick else (30, 5)

    from opentelemetry import trace

    import otel_sentry

    started = time.monotonic()
    phases: dict[str, tuple[dict[str, list[float]], dict[str, list[float]]]] = {}
    for phase in ("init()", "bare sentry_sdk"):
        if phase == "init()":
            otel_sentry.init(dsn=_DSN, transport=DiscardTransport, instrument=False)
        else:
            otel_sentry.shutdown()
            sentry_sdk.init(dsn=_DSN, transport=DiscardTransport)
        with (
            open(os.devnull, "w") as out,
            sentry_sdk.isolation_scope(),
            trace.get_tracer("bench").start_as_current_span("GET /bench"),
        ):
            setups = _setups(out)
            info = _measure({**setups, **_steps(out)}, _info, info_calls, info_rounds)
            error_setups = {k: v for k, v in setups.items() if k in _ERROR_SETUPS}
            error = _measure(error_setups, _error, error_calls, error_rounds)
        phases[phase] = (info, error)
    sentry_sdk.get_client().close()
    wall = time.monotonic() - started

    anchor = "+ structlog-sentry SentryProcessor"
    lines = [
        START_MARKER,
        "## Logging: INFO and ERROR routing cost per call",
        "",
        "Measured with `python -m benchmarks.logging_cost` (see its docstring for the method).",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- versions: {_versions()}",
        f"- load: INFO {info_rounds} rounds x {info_calls} calls, ERROR {error_rounds} rounds x "
        f"{error_calls} calls per setup and phase, interleaved; whole run {wall:.0f} s; "
        f"{DiscardTransport.envelopes} envelopes built and discarded",
        f"- machine: nproc {os.cpu_count()}, {platform.machine()}, shared with other work; "
        f"load average at the end {os.getloadavg()[0]:.1f}",
        "",
    ]
    checks = []
    for phase, (info, error) in phases.items():
        info_rows, error_rows = _rows(info, anchor), _rows(error, anchor)
        steps = [r for r in info_rows if r[0][0].isdigit()]
        info_rows = [r for r in info_rows if not r[0][0].isdigit()]
        lines += _table(f"INFO (breadcrumb) path, client of {phase}", info_rows, anchor)
        lines += _profile(phase, steps, info_rows)
        lines += _table(f"ERROR (event with exception) path, client of {phase}", error_rows, anchor)
        router = next(r for r in info_rows if r[0] == "+ SentryRouter")
        both = next(r for r in info_rows if r[0] == "+ add_trace_context + SentryRouter")
        theirs = next(r for r in info_rows if r[0] == anchor)
        verdict = "PASS" if router[2] <= 2.0 else "FAIL"
        checks.append(
            f"- {verdict}  client of {phase}: SentryRouter adds {router[2]:.2f} us per INFO call "
            f"(target <= 2 us); structlog-sentry adds {theirs[2]:.2f} us in the same run "
            f"(ratio {router[3]:.2f}); with add_trace_context {both[2]:.2f} us"
        )
    base = statistics.median(phases["bare sentry_sdk"][0]["structlog"])
    lines += [
        "Acceptance:",
        "",
        *checks,
        "",
        "The 2 us target was set on a machine where plain structlog cost 8.3-10.3 us/call and "
        f"structlog-sentry added 5-6 us; here plain structlog costs {base:.1f} us of CPU per "
        "call, so compare ratios: the absolute figures scale with the machine.",
        "",
        *_floor(phases["bare sentry_sdk"][0], anchor),
        END_MARKER,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.quick:
        replace_section(Path(args.output), section, START_MARKER, END_MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
