"""Celery: what the producer and consumer hooks cost per task, next to the anchors, in one run.

Producer: one ``apply_async`` onto kombu's in-memory transport (no network, so the hooks are
not hidden behind a broker round trip). Consumer: one task run through the worker's own code
path (``celery.app.trace.build_tracer``, as the pool calls it) with the request a worker would
build from a message published by an instrumented producer (headers, trace context,
``delivery_info``). The task body does nothing, so the time is Celery's plus the hooks'.

Setups, each in a fresh process (SDKs patch Celery for good), the repeats interleaved:

- ``plain``: Celery, uninstrumented;
- ``contrib``: the official OpenTelemetry Celery instrumentation, SDK provider recording every
  span, no processor (the anchor: what any OTel setup pays);
- ``otel_sentry``: ``contrib`` plus ``otel_sentry._internal.instrument.celery_tasks`` (messaging
  attributes, publish timestamp, receive latency): the difference to ``contrib`` is our hooks' cost;
- ``otel_sentry_export``: ``otel_sentry.init()`` with Sentry export on (a transport that drops
  the envelopes): hooks, error capture scope and span processing, what a user's worker pays;
- ``sentry_native``: sentry_sdk's own ``CeleryIntegration`` with ``traces_sample_rate=1.0``.
  It starts a publish span only inside a transaction, and there is none here: its publish
  cost is header injection only.

Because the machine is shared and the hooks cost little next to Celery itself, the section also
gives our hooks' cost measured two tighter ways: batches with and without them alternated in
one process, and the two signal handlers called directly on a recording span.

    python -m benchmarks.jobs            # writes the `jobs` section of BENCHMARKS.md
    python -m benchmarks.jobs --quick    # smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks.report import replace_section

START_MARKER = "<!-- bench:jobs:start -->"
END_MARKER = "<!-- bench:jobs:end -->"
_ROOT = Path(__file__).resolve().parents[1]
_SETUPS = ("plain", "contrib", "otel_sentry", "otel_sentry_export", "sentry_native")


@dataclass
class Result:
    publish_us: list[float] = field(default_factory=list)
    run_us: list[float] = field(default_factory=list)
    # otel_sentry only: our hooks' cost from batches with and without them, alternated in one
    # process (drift between processes on a shared machine is larger than what they cost).
    paired_publish_us: list[float] = field(default_factory=list)
    paired_run_us: list[float] = field(default_factory=list)
    # otel_sentry only: our two signal handlers called directly on a recording span, per call.
    handler_publish_us: list[float] = field(default_factory=list)
    handler_run_us: list[float] = field(default_factory=list)


def _app() -> tuple[Any, Any]:
    from celery import Celery

    app = Celery("bench_jobs", broker="memory://")
    app.conf.update(task_default_queue="jobs", broker_connection_retry_on_startup=True)

    @app.task(name="bench.noop")
    def noop(x: int) -> int:
        return x

    return app, noop


def _message_request(app: Any, task: Any) -> dict[str, Any]:
    """The request dict a worker builds from one message, as published by the current setup."""
    from celery import signals

    seen: dict[str, Any] = {}

    def keep(headers: dict[str, Any] | None = None, **_: Any) -> None:
        seen.update(headers or {})

    # Connected last, so it sees what every other publish hook added.
    signals.before_task_publish.connect(keep, weak=False)
    try:
        task.apply_async((1,))
    finally:
        signals.before_task_publish.disconnect(keep)
    _drain(app)
    return {
        **seen,
        "delivery_info": {"exchange": "", "routing_key": "jobs", "priority": 0},
        "reply_to": None,
        "correlation_id": seen.get("id"),
        "hostname": "bench@local",
    }


def _drain(app: Any) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("jobs")


def _time_publish(app: Any, task: Any, n: int) -> float:
    start = time.perf_counter_ns()
    for i in range(n):
        task.apply_async((i,))
    elapsed = time.perf_counter_ns() - start
    _drain(app)
    return elapsed / n / 1000


def _time_run(app: Any, task: Any, n: int) -> float:
    from celery.app.trace import build_tracer

    request = _message_request(app, task)
    tracer = build_tracer(task.name, task, app=app)
    start = time.perf_counter_ns()
    for _ in range(n):
        tracer(request["id"], (1,), {}, request)
    return (time.perf_counter_ns() - start) / n / 1000


class _Switch:
    """Turns the hooks of each in-process setup on and off."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        self.provider = TracerProvider(sampler=ALWAYS_ON)
        from opentelemetry import propagate

        from otel_sentry._internal.sentry.propagator import SentryPropagator

        # What init() installs; the instrumentation injects through the global propagator.
        propagate.set_global_textmap(SentryPropagator())

    def use(self, setup: str) -> None:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        from otel_sentry._internal.instrument import jobs

        jobs.uninstrument_celery()
        instrumentor = CeleryInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        if setup == "contrib":
            instrumentor.instrument(tracer_provider=self.provider)
        elif setup == "otel_sentry":
            jobs.instrument_celery(self.provider)


def _measure(app: Any, task: Any, n: int, batches: int, into: Result, warm: bool = True) -> None:
    if warm:
        _time_publish(app, task, max(50, n // 10))
        _time_run(app, task, max(50, n // 10))
    for _ in range(batches):
        into.publish_us.append(_time_publish(app, task, n))
        into.run_us.append(_time_run(app, task, n))


def _init_export() -> None:
    from sentry_sdk.transport import Transport

    import otel_sentry

    class Discard(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            pass

    otel_sentry.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=Discard,
        instrument=("celery",),
        environment="bench",
        release="bench",
    )


def _init_sentry_native() -> None:
    import sentry_sdk
    from sentry_sdk.transport import Transport

    class Discard(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            pass

    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=Discard, traces_sample_rate=1.0)


def run_one(setup: str, n: int, batches: int) -> Result:
    """One setup in this (fresh) process: SDKs patch Celery for good, so one process each."""
    app, task = _app()
    if setup in ("contrib", "otel_sentry"):
        _Switch().use(setup)
    elif setup == "otel_sentry_export":
        _init_export()
    elif setup == "sentry_native":
        _init_sentry_native()
    result = Result()
    _measure(app, task, n, batches, result)
    if setup == "otel_sentry":
        from otel_sentry._internal.instrument import jobs

        for _ in range(batches):
            jobs.uninstrument_celery()
            without = _time_publish(app, task, n), _time_run(app, task, n)
            jobs.instrument_celery()
            with_ours = _time_publish(app, task, n), _time_run(app, task, n)
            result.paired_publish_us.append(with_ours[0] - without[0])
            result.paired_run_us.append(with_ours[1] - without[1])
        _time_handlers(task, result)
    return result


def _time_handlers(task: Any, into: Result, calls: int = 200, batches: int = 20) -> None:
    """Our publish and prerun handlers alone, on spans stored where the instrumentation keeps
    them; the minimum over short batches is what they cost when nothing preempts them."""
    from opentelemetry.instrumentation.celery import utils
    from opentelemetry.sdk.trace import TracerProvider

    from otel_sentry._internal.instrument import jobs

    tracer = TracerProvider().get_tracer("bench")
    task_id = "b7c1e0a4-0000-4000-8000-000000000001"
    producer, consumer = tracer.start_span("apply_async"), tracer.start_span("run")
    utils.attach_context(task, task_id, producer, None, None, is_publish=True)
    utils.attach_context(task, task_id, consumer, None, None)
    headers = {"id": task_id, "task": task.name, "retries": 0}
    task.push_request(
        id=task_id,
        retries=0,
        delivery_info={"exchange": "", "routing_key": "jobs"},
        **{jobs.PUBLISHED_AT_HEADER: time.time()},
    )
    try:
        for _ in range(batches):
            start = time.perf_counter_ns()
            for _ in range(calls):
                jobs._on_publish(sender=task.name, headers=headers, routing_key="jobs")
            into.handler_publish_us.append((time.perf_counter_ns() - start) / calls / 1000)
            start = time.perf_counter_ns()
            for _ in range(calls):
                jobs._on_prerun(task_id=task_id, task=task)
            into.handler_run_us.append((time.perf_counter_ns() - start) / calls / 1000)
    finally:
        task.pop_request()


def run(n: int, batches: int, repeat: int) -> dict[str, Result]:
    """Every setup in its own process, the repeats interleaved (plain, contrib, ..., plain, ...)."""
    results = {name: Result() for name in _SETUPS}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    for _ in range(repeat):
        for setup in _SETUPS:
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.jobs",
                        "--one",
                        setup,
                        "--tasks",
                        str(n),
                        "--batches",
                        str(batches),
                    ],
                    cwd=_ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            measured = json.loads(out)
            for key, values in measured.items():
                getattr(results[setup], key).extend(values)
    return results


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(
    results: dict[str, Result], command: str, n: int, batches: int, repeat: int, seconds: float
) -> str:
    plain = results["plain"]
    contrib = results["contrib"]
    base_pub, base_run = _median(plain.publish_us), _median(plain.run_us)
    anchor_pub = _median(contrib.publish_us) - base_pub
    anchor_run = _median(contrib.run_us) - base_run
    rows = []
    for name in _SETUPS:
        r = results[name]
        pub, run_ = _median(r.publish_us), _median(r.run_us)
        over_pub, over_run = pub - base_pub, run_ - base_run
        rows.append(
            f"| {name} | {pub:.0f} (min {min(r.publish_us):.0f}) | {over_pub:.0f} | "
            f"{over_pub / anchor_pub:.2f} | {run_:.0f} (min {min(r.run_us):.0f}) | "
            f"{over_run:.0f} | {over_run / anchor_run:.2f} |"
        )
    ours = results["otel_sentry"]
    ours_pub = _median(ours.publish_us) - _median(contrib.publish_us)
    ours_run = _median(ours.run_us) - _median(contrib.run_us)
    versions = ", ".join(
        f"{d} {version(d)}"
        for d in (
            "celery",
            "kombu",
            "opentelemetry-sdk",
            "opentelemetry-instrumentation-celery",
            "sentry-sdk",
        )
    )
    lines = [
        START_MARKER,
        "## Celery jobs: producer and consumer hooks",
        "",
        f"Measured with `{command}`.",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- versions: {versions}",
        f"- load: {repeat} repeat(s) x {batches} batches x {n} tasks per setup; whole run "
        f"{seconds:.0f} s",
        "",
        "Median us per task over batches. `publish` = one `apply_async` onto kombu's in-memory",
        "transport; `run` = one task through the worker's tracer (`build_tracer`) with the",
        "request a worker builds from an instrumented message. Overhead = minus `plain` of the",
        "same run; `x contrib` divides it by the official instrumentation's overhead.",
        "",
        "| setup | publish us | publish overhead us | x contrib | run us | run overhead us "
        "| x contrib |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Our two signal handlers called directly (minimum over 20 batches of 200 calls): "
        f"{min(ours.handler_publish_us):.1f} us per publish, "
        f"{min(ours.handler_run_us):.1f} us per task run (medians "
        f"{_median(ours.handler_publish_us):.1f} and {_median(ours.handler_run_us):.1f} us).",
        "",
        "Our hooks alone, from batches with and without them alternated in the `otel_sentry` "
        f"process: {_median(ours.paired_publish_us):.0f} us per publish (batches "
        f"{min(ours.paired_publish_us):.0f} to {max(ours.paired_publish_us):.0f}), "
        f"{_median(ours.paired_run_us):.0f} us per task run (batches "
        f"{min(ours.paired_run_us):.0f} to {max(ours.paired_run_us):.0f}). Across processes "
        f"(`otel_sentry` minus `contrib`, medians): {ours_pub:.0f} us and {ours_run:.0f} us; "
        "the machine is shared, so differences within the spread of the batches are noise.",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400, help="tasks per batch")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small run, writes nothing")
    parser.add_argument("--one", choices=_SETUPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one = run_one(args.one, args.tasks, args.batches)
        print(json.dumps(dataclasses.asdict(one)))
        return
    if args.quick:
        args.tasks, args.batches, args.repeat = 200, 2, 1
    began = time.monotonic()
    results = run(args.tasks, args.batches, args.repeat)
    command = "python -m benchmarks.jobs" + (" --quick" if args.quick else "")
    section = render(
        results, command, args.tasks, args.batches, args.repeat, time.monotonic() - began
    )
    print(section)
    if not args.quick:
        replace_section(_ROOT / "BENCHMARKS.md", section, START_MARKER, END_MARKER)


if __name__ == "__main__":
    main()
