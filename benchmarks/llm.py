"""What ``llm_span`` costs per model call, against a bare OpenTelemetry span and against nothing.

    .venv/bin/python -m benchmarks.llm          # ~30 s; writes its section of BENCHMARKS.md

All three variants run in the same process, interleaved round by round, under the full
``otel_sentry.init()`` setup (sampling at 1.0, Sentry export to a local inbox, the GenAI
breadcrumb processor): ``nothing`` is the call's own work, ``bare span`` wraps it in one
``start_as_current_span`` with the same attributes, ``llm_span`` records model, response,
finish reasons and usage through the public API. Every 200 calls share one root span, as calls
inside one request would. A second table puts the wrapper in context: one real
``openai`` chat completion against the local model, with and without the instrumentation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import SpanKind

import otel_sentry
from benchmarks.report import replace_section
from examples.local_llm import LocalLLM
from otel_sentry._internal.instrument import llm
from otel_sentry.inbox import Inbox

START_MARKER = "<!-- bench:llm:start -->"
END_MARKER = "<!-- bench:llm:end -->"
BATCH = 200

_USAGE = {"input_tokens": 120, "output_tokens": 40, "cached_input_tokens": 64}
_TRACER = trace.get_tracer("bench")


def _nothing() -> None:
    sum(_USAGE.values())


def _bare_span() -> None:
    with _TRACER.start_as_current_span(
        "chat gpt-4o",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
        },
    ) as span:
        _nothing()
        span.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
        span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        span.set_attribute("gen_ai.usage.input_tokens", 120)
        span.set_attribute("gen_ai.usage.output_tokens", 40)
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", 64)


def _llm_span() -> None:
    with llm.llm_span("chat", provider="openai", request_model="gpt-4o") as call:
        _nothing()
        call.set_response(model="gpt-4o-2024-08-06", finish_reasons=["stop"])
        call.set_usage(**_USAGE)


def _per_call_us(work: Callable[[], None], calls: int) -> float:
    # CPU time of this thread: what the call path costs, unaffected by other processes on a
    # shared machine and by the export threads (their work is off the request path).
    tracer = _TRACER
    start = time.thread_time()
    for _ in range(calls // BATCH):
        with tracer.start_as_current_span("batch"):
            for _ in range(BATCH):
                work()
    return (time.thread_time() - start) / calls * 1e6


def _openai_call_ms(server: LocalLLM, calls: int) -> float:
    import openai

    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-local")
    messages = [{"role": "user", "content": "one two three"}]
    client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    start = time.perf_counter()
    for _ in range(calls):
        client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    client.close()
    return (time.perf_counter() - start) / calls * 1e3


def run(rounds: int, calls: int, http_calls: int) -> str:
    variants: dict[str, Callable[[], None]] = {
        "nothing": _nothing,
        "bare span (anchor)": _bare_span,
        "llm_span": _llm_span,
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    http: dict[str, list[float]] = {"uninstrumented": [], "instrumented": []}
    with Inbox(port=0) as inbox, LocalLLM(first_chunk_delay=0) as server:
        otel_sentry.init(dsn=inbox.dsn(), instrument=("openai",), release="bench")
        try:
            for work in variants.values():
                _per_call_us(work, BATCH * 5)  # warm-up
            for _ in range(rounds):
                for name, work in variants.items():
                    timings[name].append(_per_call_us(work, calls))
                    otel_sentry.flush(10)
            with trace.get_tracer("bench").start_as_current_span("http"):
                for _ in range(rounds):
                    llm.uninstrument_llm_clients()
                    http["uninstrumented"].append(_openai_call_ms(server, http_calls))
                    llm.instrument_llm_clients()
                    http["instrumented"].append(_openai_call_ms(server, http_calls))
            otel_sentry.flush(10)
        finally:
            otel_sentry.shutdown()
    return _section(timings, http, rounds, calls, http_calls)


def _section(
    timings: dict[str, list[float]],
    http: dict[str, list[float]],
    rounds: int,
    calls: int,
    http_calls: int,
) -> str:
    median = {name: statistics.median(values) for name, values in timings.items()}
    base = median["nothing"]
    anchor = median["bare span (anchor)"] - base
    lines = [
        START_MARKER,
        "## llm: `llm_span` per model call",
        "",
        f"`python -m benchmarks.llm`, {time.strftime('%Y-%m-%d')}: median of {rounds} rounds of "
        f"{calls} calls per variant (interleaved, same process, every {BATCH} calls under one "
        "root span), full `otel_sentry.init()` setup at sample rate 1.0 exporting to a local "
        "inbox; CPU time of the calling thread. Both spans carry `gen_ai.operation.name`, so "
        "both pay for the `gen_ai` breadcrumb (sentry_sdk's `add_breadcrumb` and the scrubber). "
        f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared "
        "machine inflates every figure alike; compare the ratios).",
        "",
        "| variant | CPU us per call | overhead over nothing (us) | overhead / anchor |",
        "|---|---:|---:|---:|",
    ]
    for name, value in median.items():
        overhead = value - base
        ratio = "" if name == "nothing" else f"{overhead / anchor:.2f}x"
        lines.append(f"| {name} | {value:.2f} | {overhead:.2f} | {ratio} |")
    plain, wrapped = (statistics.median(http[k]) for k in ("uninstrumented", "instrumented"))
    lines += [
        "",
        f"In context, one real `openai` chat completion against `examples/local_llm.py` on "
        f"127.0.0.1 (median of {rounds} rounds of {http_calls} calls, wall clock):",
        "",
        "| openai client | ms per call |",
        "|---|---:|",
        f"| uninstrumented | {plain:.3f} |",
        f"| instrumented (GenAI span + httpx2 span) | {wrapped:.3f} |",
        "",
        f"The GenAI span is {median['llm_span'] - base:.1f} us of a call that takes "
        f"{plain * 1000:.0f} us against a local server and hundreds of milliseconds against a "
        "real provider. The instrumented client also pays for the HTTP span beneath "
        "(`llm_http_spans=false` suppresses it).",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="llm_span overhead per call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--http-calls", type=int, default=100)
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    section = run(args.rounds, args.calls, args.http_calls)
    print(section)
    if not args.no_write:
        replace_section(Path(args.output), section, START_MARKER, END_MARKER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
