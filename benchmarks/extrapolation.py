"""How ``keep_error_traces`` weights the transactions it keeps, and why: a simulation.

    .venv/bin/python -m benchmarks.extrapolation      # ~20 s; prints the table in docs/design.md

Sentry extrapolates every transaction by ``1 / sample_rate``, the ``sample_rate`` of its
envelope's DSC (Relay's metrics extraction: ``extrapolation_factor``). An endpoint failing 5% of
the time takes requests at head rate 0.1 through the real pipeline: our sampler, the
``TransactionExporter`` with its held segments, ``build_transaction``; the envelopes are caught
by a transport that keeps them. From what arrived, each weighting estimates the request count
and the failure rate, as Sentry would:

- ``head only``: ``keep_error_traces`` off; what the head kept, at 1 / 0.1 each;
- ``head rate for all``: every kept transaction weighted as the head's rate says (1 / 0.1);
- ``1.0 for the extra``: 1.0 only for those kept for their error alone;
- ``1.0 for every error`` (ours): every transaction with an error says 1.0, head-sampled or not.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from otel_sentry._internal.sentry.keep_errors import HeldSegments
from otel_sentry._internal.sentry.sampler import SentrySampler
from otel_sentry._internal.sentry.span_processor import TransactionExporter
from otel_sentry._internal.sentry.transactions import TransactionDefaults

HEAD_RATE = 0.1


class Caught(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


class SeededIds(IdGenerator):
    """OpenTelemetry's random ids, from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


@dataclass(frozen=True)
class Arrived:
    sample_rate: float  # the DSC's
    failed: bool
    kept_for_error: bool


def run(requests: int, failure_rate: float, keep: bool, seed: int) -> tuple[list[Arrived], int]:
    """``requests`` through the real pipeline: what reached the transport, and how many failed."""
    rng = random.Random(seed)
    sampler = SentrySampler(rate=HEAD_RATE)
    sampler.keep_unsampled = keep
    caught = Caught()
    exporter = TransactionExporter(
        TransactionDefaults(),
        sampler=sampler,
        transport=lambda: caught,
        held=HeldSegments(max_bytes=64 * 2**20) if keep else None,
    )
    # Trace ids (and so each head decision, drawn from them) from the seeded generator too: a
    # trial is the same on every run and every Python.
    provider = TracerProvider(sampler=sampler, id_generator=SeededIds(rng))
    provider.add_span_processor(exporter)
    tracer = provider.get_tracer("simulation")
    failures = 0
    for _ in range(requests):
        with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as span:
            if rng.random() < failure_rate:
                failures += 1
                span.set_status(Status(StatusCode.ERROR))
    exporter.force_flush(60_000)
    provider.shutdown()
    out = []
    for envelope in caught.envelopes:
        # The transaction item is its JSON bytes only (span_processor.transaction_envelope).
        event: dict[str, Any] = json.loads(envelope.items[0].get_bytes())
        out.append(
            Arrived(
                sample_rate=float(envelope.headers["trace"]["sample_rate"]),
                failed=event["contexts"]["trace"]["status"] != "ok",
                kept_for_error=event.get("tags", {}).get("otel_sentry.kept_for") == "error",
            )
        )
    return out, failures


Weighting = Callable[[Arrived], float]

WEIGHTINGS: dict[str, tuple[bool, Weighting]] = {
    "head only": (False, lambda a: 1 / a.sample_rate),
    "head rate for all": (True, lambda a: 1 / HEAD_RATE),
    "1.0 for the extra": (True, lambda a: 1.0 if a.kept_for_error else 1 / HEAD_RATE),
    "1.0 for every error (ours)": (True, lambda a: 1 / a.sample_rate),
}


def estimate(arrived: list[Arrived], weight: Weighting) -> tuple[float, float]:
    """(requests, failure rate) extrapolated from what arrived."""
    total = sum(weight(a) for a in arrived)
    failed = sum(weight(a) for a in arrived if a.failed)
    return total, failed / total if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for name, (keep, weight) in WEIGHTINGS.items():
        counts, rates, sent = [], [], []
        for trial in range(args.trials):
            arrived, failures = run(args.requests, args.failure_rate, keep, seed=trial)
            total, rate = estimate(arrived, weight)
            counts.append(total / args.requests - 1)
            rates.append(rate / (failures / args.requests) - 1)
            sent.append(sum(a.failed for a in arrived) / failures)
        rows.append(
            f"| {name} | {statistics.mean(sent):.0%} "
            f"| {statistics.mean(counts):+.1%} (worst {max(counts, key=abs):+.1%}) "
            f"| {statistics.mean(rates):+.1%} (worst {max(rates, key=abs):+.1%}) |"
        )
    print(
        f"{args.requests} requests, {args.failure_rate:.0%} failing, head rate {HEAD_RATE}, "
        f"{args.trials} trials; each estimate against its trial's truth (the requests, and the "
        "failures the trial drew)"
    )
    print()
    print(
        "| weighting | failing requests with a transaction | extrapolated requests vs truth "
        "| extrapolated failure rate vs truth |"
    )
    print("|---|---:|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
