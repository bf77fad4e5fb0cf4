"""What summing LLM spend on the root span (``LlmTotals``) adds to each model call.

    .venv/bin/python -m benchmarks.llm_totals            # ~30 s; prints its section
    .venv/bin/python -m benchmarks.llm_totals --write    # and writes it into BENCHMARKS.md

Same process, full ``otel_sentry.init()`` setup (sample rate 1.0, Sentry export to a local
inbox), variants interleaved round by round. The anchor is the same ``llm_span`` call with the
totals processor taken out of the switchboard; the other variants put it back: a model whose
price is linear (``gpt-4o``: per-token prices read once, a dot product per call), a model with
tiered prices (``claude-sonnet-4-5``: genai-prices computes every call) and a model without a
price. Every 200 calls share one root span, as calls inside one request would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace

import otel_sentry
from benchmarks.report import replace_section
from otel_sentry._internal import pipeline
from otel_sentry._internal.instrument import llm
from otel_sentry._internal.instrument.llm_totals import LlmTotals
from otel_sentry.inbox import Inbox

START_MARKER = "<!-- bench:llm_totals:start -->"
END_MARKER = "<!-- bench:llm_totals:end -->"
BATCH = 200
ANCHOR = "llm_span, totals off (anchor)"

_USAGE = {"input_tokens": 1200, "output_tokens": 400, "cached_input_tokens": 640}
_TRACER = trace.get_tracer("bench")


def _call(provider: str, model: str, served: str) -> Callable[[], None]:
    def work() -> None:
        with llm.llm_span("chat", provider=provider, request_model=model) as call:
            call.set_response(model=served, finish_reasons=["stop"])
            call.set_usage(**_USAGE)

    return work


def _per_call_us(work: Callable[[], None], calls: int) -> float:
    # CPU time of this thread: the request path only, not the export threads.
    start = time.thread_time()
    for _ in range(calls // BATCH):
        with _TRACER.start_as_current_span("request"):
            for _ in range(BATCH):
                work()
    return (time.thread_time() - start) / calls * 1e6


def run(rounds: int, calls: int) -> str:
    linear = _call("openai", "gpt-4o", "gpt-4o-2024-08-06")
    variants: dict[str, tuple[bool, Callable[[], None]]] = {
        ANCHOR: (False, linear),
        "totals on, gpt-4o (linear price)": (True, linear),
        "totals on, claude-sonnet-4-5 (tiered: genai-prices per call)": (
            True,
            _call("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5"),
        ),
        "totals on, unknown model (no price)": (
            True,
            _call("openai", "local-llama", "local-llama-9000"),
        ),
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    with Inbox(port=0) as inbox:
        otel_sentry.init(dsn=inbox.dsn(), instrument=False, release="bench")
        try:
            with_totals = pipeline.switchboard.targets
            without = tuple(t for t in with_totals if not isinstance(t, LlmTotals))
            assert len(without) == len(with_totals) - 1, "LlmTotals is not installed"
            for on, work in variants.values():
                pipeline.switchboard.targets = with_totals if on else without
                _per_call_us(work, BATCH * 5)  # warm-up: imports, price lookups
            for _ in range(rounds):
                for name, (on, work) in variants.items():
                    pipeline.switchboard.targets = with_totals if on else without
                    timings[name].append(_per_call_us(work, calls))
                    otel_sentry.flush(10)
            pipeline.switchboard.targets = with_totals
        finally:
            otel_sentry.shutdown()
    return _section(timings, rounds, calls)


def _section(timings: dict[str, list[float]], rounds: int, calls: int) -> str:
    median = {name: statistics.median(values) for name, values in timings.items()}
    anchor = median[ANCHOR]
    lines = [
        START_MARKER,
        "## llm_totals: LLM spend summed on the root span, per model call",
        "",
        f"`python -m benchmarks.llm_totals`, {time.strftime('%Y-%m-%d')}: median of {rounds} "
        f"rounds of {calls} `llm_span` calls per variant (interleaved, same process, every "
        f"{BATCH} calls under one root span), full `otel_sentry.init()` setup at sample rate "
        "1.0 exporting to a local inbox; CPU time of the calling thread. Load average at the "
        f"end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (compare the ratios).",
        "",
        "| variant | CPU us per call | added over anchor (us) | / anchor |",
        "|---|---:|---:|---:|",
    ]
    for name, value in median.items():
        lines.append(f"| {name} | {value:.2f} | {value - anchor:.2f} | {value / anchor:.2f}x |")
    lines += [
        "",
        "A real model call takes hundreds of milliseconds; the anchor is the whole GenAI span "
        "(span, attributes, the `gen_ai` breadcrumb, export queueing).",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LlmTotals overhead per model call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--write", action="store_true", help="replace the section in --output")
    args = parser.parse_args(argv)
    section = run(args.rounds, args.calls)
    print(section)
    if args.write:
        replace_section(Path(args.output), section, START_MARKER, END_MARKER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
